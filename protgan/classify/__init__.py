"""Fine-tuned multilabel classifiers: backbones + the paper's heads, focal loss, schedules, classic and
GAN augmentation, K-fold training, thresholds, metrics, reports and prediction.

Importing the package is light (protgan.classify.config needs no torch); `--features ckpt:PATH` is
registered by importing protgan.classify.embedding, which the commands that take it do.
"""
