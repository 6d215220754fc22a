"""protgan: contrast enhancement, per-class DCGANs and multilabel classifiers for HPA images."""

__version__ = "0.1.0"
