"""Per-class DCGANs: the paper's models, DiffAugment, the training loop, run folders and checkpoints."""

from protgan.gan.checkpoint import (
    BEST, CKPT_DIR, CONFIG_FILE, LAST, METRICS_FILE, SAMPLES_DIR, best_checkpoint, find_runs, last_checkpoint,
    load_checkpoint, load_generator, read_run_config, save_checkpoint,
)
from protgan.gan.models import Discriminator, Generator, build_discriminator, build_generator, dcgan_init, num_layers

__all__ = [
    "BEST", "CKPT_DIR", "CONFIG_FILE", "Discriminator", "Generator", "LAST", "METRICS_FILE", "SAMPLES_DIR",
    "best_checkpoint", "build_discriminator", "build_generator", "dcgan_init", "find_runs", "last_checkpoint",
    "load_checkpoint", "load_generator", "num_layers", "read_run_config", "save_checkpoint",
]
