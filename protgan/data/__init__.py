"""Dataset formats, channels, class names, folds, the packed cache and the PyTorch loader."""

from protgan.data.cache import PackedCache, build_cache, find_cache, read_stack
from protgan.data.channels import CHANNEL_ORDER, CHANNEL_SETS, channel_set_name, parse_channels
from protgan.data.classes import CLASS_NAMES, NUM_CLASSES, class_name, resolve_class, resolve_subset, top_k_classes
from protgan.data.dataset import ImageSet, open_dataset, read_label_table, write_label_table
from protgan.data.folds import FOLDS_FILE, MultilabelFolds, dataset_folds, load_or_make_folds, make_folds, read_folds, write_folds
from protgan.data.imageio import read_channel, read_channel_raw, resize, to_uint8, write_image, write_png
from protgan.data.loader import ChannelStackDataset, make_loader
from protgan.data.ranges import (
    composite_rgb, composite_weights, to_signed_range, to_three_channels, to_uint8_images, to_unit_range, unit_range_at,
)

__all__ = [
    "CHANNEL_ORDER", "CHANNEL_SETS", "CLASS_NAMES", "ChannelStackDataset", "FOLDS_FILE", "ImageSet",
    "MultilabelFolds", "NUM_CLASSES", "PackedCache", "build_cache", "channel_set_name", "class_name",
    "composite_rgb", "composite_weights", "dataset_folds", "find_cache", "load_or_make_folds", "make_folds", "make_loader", "open_dataset",
    "parse_channels", "read_channel", "read_channel_raw", "read_folds", "read_label_table", "read_stack",
    "resize", "resolve_class", "resolve_subset", "to_signed_range", "to_three_channels", "to_uint8", "to_uint8_images", "to_unit_range", "unit_range_at",
    "top_k_classes", "write_folds", "write_image", "write_label_table", "write_png",
]
