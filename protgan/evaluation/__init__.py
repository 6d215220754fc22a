"""How good synthetic images are: FID / KID, feature extractors, the training-time evaluator."""
