"""Per-class DCGANs: the paper's models, DiffAugment, the training loop, run folders and checkpoints.

The names below are loaded on first use (protgan.core.lazy): `protgan.gan.config` needs no torch.
"""

from protgan.core.lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "protgan.gan.checkpoint": "BEST CKPT_DIR CONFIG_FILE LAST METRICS_FILE SAMPLES_DIR best_checkpoint find_runs "
                              "last_checkpoint load_checkpoint load_generator read_run_config save_checkpoint",
    "protgan.gan.models": "Discriminator Generator build_discriminator build_generator dcgan_init num_layers",
})
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
