"""Image-quality scores: the one module that owns MSE, PSNR and SSIM for the project.

Full-reference scores compare an image with a reference (here: the enhanced image against the
original), on the data range of the *input's bit depth* (255 for 8-bit, 65535 for 16-bit):

- ``mse``: mean of squared differences (paper eq. 5), in the units of the pixel values.
- ``psnr``: ``10 log10(R^2 / MSE)`` (eq. 6); identical images give ``inf``.
- ``ssim``: Wang et al. 2004 (eq. 7), exactly as ``skimage.metrics.structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R)``: an 11 x 11
  Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, population
  (co)variances, and the mean of the SSIM map over the pixels at least 5 pixels from the border
  (skimage's crop, so the border handling of the filter never enters the score). Computed with
  OpenCV's separable filter on images scaled to [0, 1] in float32, many times faster than skimage
  and within ~1e-6 of it. ``SSIMScorer`` keeps the reference's filtered moments so that scoring several
  candidates against one original filters the original only once.

No-reference scores of one image (they say how much contrast there *is*, not how little changed):

- ``rms_contrast``: standard deviation of the intensities divided by the data range (0..0.5).
- ``entropy``: Shannon entropy in bits of the grey-level histogram (all 256 or 65,536 levels).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from protgan.core.errors import ProtganError

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage derives it
SSIM_WIN = 2 * SSIM_RADIUS + 1  # 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_KERNEL = cv2.getGaussianKernel(SSIM_WIN, SSIM_SIGMA, cv2.CV_32F)


def data_range_of(img: np.ndarray) -> int:
    """The data range of an image's bit depth: 255 (uint8) or 65535 (uint16)."""
    if img.dtype == np.uint8:
        return 255
    if img.dtype == np.uint16:
        return 65535
    raise ProtganError(f"unsupported pixel type {img.dtype} (expected uint8 or uint16)")


def _pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ProtganError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise ProtganError(f"images differ in bit depth: {a.dtype} vs {b.dtype}")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error in pixel units (float64 accumulation, exact for 8- and 16-bit)."""
    _pair(a, b)
    if a.size == 0:
        raise ProtganError("empty image")
    return float(cv2.norm(a, b, cv2.NORM_L2SQR)) / a.size


def psnr_from_mse(err: float, data_range: float) -> float:
    """PSNR in dB for a given MSE; ``inf`` for a perfect match (MSE 0)."""
    if err <= 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / err)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; data range from the bit depth unless given."""
    rng = data_range_of(a) if data_range is None else data_range
    return psnr_from_mse(mse(a, b), rng)


def _filter(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    # Gaussian window by two 1-D passes; border mode is irrelevant (the border is cropped)
    return cv2.sepFilter2D(src, cv2.CV_32F, _KERNEL, _KERNEL, dst=dst, borderType=cv2.BORDER_REFLECT)


class SSIMScorer:
    """SSIM of many candidates against one reference, with preallocated float32 work buffers.

    ``set_reference(img)`` filters the reference once (its mean and variance maps are kept);
    ``score(img)`` then costs three Gaussian filters and a few in-place array operations. The
    buffers are reused from image to image because fresh megabyte arrays cost a page fault per
    4 KiB page, which on some virtual machines is slower than the arithmetic itself.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        if len(shape) != 2:
            raise ProtganError(f"SSIM needs a 2-D image, got shape {shape}")
        if min(shape) < SSIM_WIN:
            raise ProtganError(f"image {shape[1]}x{shape[0]} is smaller than the {SSIM_WIN}x{SSIM_WIN} SSIM window")
        self.shape = tuple(shape)
        buf = lambda: np.empty(self.shape, np.float32)  # noqa: E731
        self._x, self._ux, self._ux2_c1, self._vx_c2 = buf(), buf(), buf(), buf()
        self._y, self._uy, self._t1, self._t2, self._t3 = buf(), buf(), buf(), buf(), buf()
        self._scale = np.float32(1.0)
        self._has_ref = False

    def set_reference(self, ref: np.ndarray, data_range: float | None = None) -> "SSIMScorer":
        if ref.shape != self.shape:
            raise ProtganError(f"images differ in shape: {self.shape} vs {ref.shape}")
        rng = float(data_range_of(ref) if data_range is None else data_range)
        if rng <= 0:
            raise ProtganError(f"SSIM data range must be > 0, got {rng}")
        # scaled to [0, 1]: float32 then keeps SSIM within ~1e-6 of skimage's float64 (C2 = 9e-4 here)
        self._scale = np.float32(1.0 / rng)
        self._dtype = ref.dtype
        x, ux, t = self._x, self._ux, self._t1
        np.multiply(ref, self._scale, out=x, casting="unsafe")
        _filter(x, ux)
        np.multiply(x, x, out=t)
        _filter(t, self._vx_c2)
        np.multiply(ux, ux, out=self._ux2_c1)
        self._vx_c2 -= self._ux2_c1  # population variance of the reference
        self._vx_c2 += np.float32(SSIM_K2 ** 2)
        self._ux2_c1 += np.float32(SSIM_K1 ** 2)
        self._has_ref = True
        return self

    def score(self, img: np.ndarray) -> float:
        """Mean SSIM of `img` against the reference (same shape and bit depth)."""
        if not self._has_ref:
            raise RuntimeError("SSIMScorer.score called before set_reference")
        if img.shape != self.shape:
            raise ProtganError(f"images differ in shape: {self.shape} vs {img.shape}")
        if img.dtype != self._dtype:
            raise ProtganError(f"images differ in bit depth: {self._dtype} vs {img.dtype}")
        y, uy, t1, t2, t3 = self._y, self._uy, self._t1, self._t2, self._t3
        np.multiply(img, self._scale, out=y, casting="unsafe")
        _filter(y, uy)
        np.multiply(y, y, out=t1)
        _filter(t1, t2)  # E[y^2]
        np.multiply(uy, uy, out=t1)
        t2 -= t1  # var(y)
        t2 += self._vx_c2  # var(x) + var(y) + C2
        t1 += self._ux2_c1  # ux^2 + uy^2 + C1
        t2 *= t1  # denominator
        np.multiply(self._x, y, out=t1)
        _filter(t1, t3)  # E[xy]
        np.multiply(self._ux, uy, out=t1)  # ux uy
        t3 -= t1  # cov(x, y)
        t3 *= np.float32(2.0)
        t3 += np.float32(SSIM_K2 ** 2)
        t1 *= np.float32(2.0)
        t1 += np.float32(SSIM_K1 ** 2)
        t1 *= t3  # numerator
        t1 /= t2
        r = SSIM_RADIUS
        return float(cv2.mean(t1[r:-r, r:-r])[0])


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Mean structural similarity of `b` against `a` (symmetric), skimage's Gaussian-window definition."""
    _pair(a, b)
    return SSIMScorer(a.shape).set_reference(a, data_range).score(b)


def ssim_many(ref: np.ndarray, others: Sequence[np.ndarray], data_range: float | None = None) -> list[float]:
    """SSIM of each image in `others` against `ref`, filtering `ref` once."""
    scorer = SSIMScorer(ref.shape).set_reference(ref, data_range)
    return [scorer.score(o) for o in others]


def rms_contrast(img: np.ndarray) -> float:
    """Root-mean-square contrast: std of the intensities over the data range (no reference)."""
    _, std = cv2.meanStdDev(img)
    return float(std[0, 0]) / data_range_of(img)


def entropy(img: np.ndarray) -> float:
    """Shannon entropy (bits) of the grey-level histogram over all levels of the bit depth."""
    levels = data_range_of(img) + 1
    if img.dtype == np.uint8:
        hist = cv2.calcHist([img], [0], None, [256], [0, 256]).ravel().astype(np.float64)  # counts exact in float32
    else:
        hist = np.bincount(img.ravel(), minlength=levels).astype(np.float64)
    p = hist[hist > 0] / img.size
    return float(-(p * np.log2(p)).sum())
