"""Fine-tuned multilabel classifiers: backbones + the paper's heads, focal loss, schedules, classic and
GAN augmentation, K-fold training, thresholds, metrics, reports and prediction."""
