"""Fine-tuned multilabel classifiers: backbones + the paper's heads, focal loss, schedules, classic and
GAN augmentation, K-fold training, thresholds, metrics, reports and prediction."""

from protgan.classify import embedding as _embedding  # noqa: F401,E402  (registers --features ckpt:PATH)
