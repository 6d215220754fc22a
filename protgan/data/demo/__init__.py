"""The embedded default dataset: an HPA-like synthetic cell atlas (`protgan demo-data`).

Fields of cells in the HPA Kaggle layout, with the protein (green) drawn in the compartments of each
image's labels, labels drawn from the real HPA label table's statistics, deterministic by seed.
"""

from protgan.data.demo.dataset import (
    CONFIG_FILE,
    GENERATOR_VERSION,
    DemoDataConfig,
    demo_labels,
    generate_demo_dataset,
    image_id,
    image_rngs,
)
from protgan.data.demo.labels import (
    DRAWABLE_CLASSES,
    TOP5,
    label_set_distribution,
    label_stats,
    resolve_demo_classes,
    sample_labels,
)
from protgan.data.demo.render import MAX_SIZE, MIN_SIZE, PAINTERS, render_sample

__all__ = [
    "CONFIG_FILE", "DRAWABLE_CLASSES", "DemoDataConfig", "GENERATOR_VERSION", "MAX_SIZE", "MIN_SIZE",
    "PAINTERS", "TOP5", "demo_labels", "generate_demo_dataset", "image_id", "image_rngs",
    "label_set_distribution", "label_stats", "render_sample", "resolve_demo_classes", "sample_labels",
]
