"""Dataset formats, channels, class names, folds, the packed cache and the PyTorch loader.

The names below are loaded on first use (protgan.core.lazy): `import protgan.data.classes` does not
import torch or OpenCV.
"""

from protgan.core.lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "protgan.data.cache": "PackedCache build_cache find_cache read_stack",
    "protgan.data.channels": "CHANNEL_ORDER CHANNEL_SETS channel_set_name parse_channels",
    "protgan.data.classes": "CLASS_NAMES NUM_CLASSES class_name resolve_class resolve_subset top_k_classes",
    "protgan.data.dataset": "ImageSet open_dataset read_label_table write_label_table",
    "protgan.data.folds": "FOLDS_FILE MultilabelFolds dataset_folds load_or_make_folds make_folds read_folds write_folds",
    "protgan.data.imageio": "read_channel read_channel_raw resize to_uint8 write_image write_png",
    "protgan.data.loader": "ChannelStackDataset make_loader",
    "protgan.data.ranges": "composite_rgb composite_weights to_signed_range to_three_channels to_uint8_images "
                           "to_unit_range unit_range_at",
})
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
