"""Contrast enhancement (HE / AHE / CLAHE) and the image-quality scores (MSE / PSNR / SSIM, RMS
contrast, entropy) that compare them; `run_enhance` writes an enhanced dataset.

`protgan.enhance.metrics` is the project's one implementation of MSE, PSNR and SSIM: other stages
import it from here.
"""

from protgan.enhance.methods import METHODS, ahe, clahe, equalize_lut, get_method, he, parse_methods
from protgan.enhance.metrics import SSIMScorer, data_range_of, entropy, mse, psnr, rms_contrast, ssim, ssim_many
from protgan.enhance.pipeline import APPLY_CHOICES, EnhanceConfig, EnhanceResult, run_enhance, score_image
from protgan.enhance.report import CRITERIA, select_best, summarize

__all__ = [
    "APPLY_CHOICES", "CRITERIA", "EnhanceConfig", "EnhanceResult", "METHODS", "SSIMScorer", "ahe", "clahe",
    "data_range_of", "entropy", "equalize_lut", "get_method", "he", "mse", "parse_methods", "psnr",
    "rms_contrast", "run_enhance", "score_image", "select_best", "ssim", "ssim_many", "summarize",
]
