"""Contrast enhancement (HE / AHE / CLAHE) and the image-quality scores (MSE / PSNR / SSIM, RMS
contrast, entropy) that compare them; `run_enhance` writes an enhanced dataset.

`protgan.enhance.metrics` is the project's one implementation of MSE, PSNR and SSIM: other stages
import it from here. The names are loaded on first use (protgan.core.lazy): the config needs no OpenCV.
"""

from protgan.core.lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "protgan.enhance.config": "APPLY_CHOICES METHODS EnhanceConfig",
    "protgan.enhance.methods": "ahe clahe equalize_lut get_method he parse_methods",
    "protgan.enhance.metrics": "SSIMScorer data_range_of entropy mse psnr rms_contrast ssim ssim_many",
    "protgan.enhance.pipeline": "EnhanceResult run_enhance score_image",
    "protgan.enhance.report": "CRITERIA select_best summarize",
})
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
