"""The three contrast enhancements of the paper (section 3.1.1) on 2-D uint8 or uint16 images.

All three keep the input's bit depth: a 16-bit image is equalised over its 65,536 levels, never
truncated to 8 bits first.

- HE, global histogram equalisation: the OpenCV mapping ``lut[v] = round((cdf(v) - cdf_min) /
  (N - cdf_min) * maxval)``, so the darkest level present maps to 0 and the brightest to maxval.
  8-bit uses ``cv2.equalizeHist``; 16-bit uses the same formula as a 65,536-entry lookup table
  (OpenCV has no 16-bit equalizeHist).
- CLAHE: ``cv2.createCLAHE`` (8- and 16-bit). The image is cut into ``tile_grid`` x ``tile_grid``
  tiles; each tile's histogram is clipped at ``clip_limit`` times the mean bin height (the excess is
  spread over all bins) and turned into a mapping; every pixel's value is the bilinear blend of the
  mappings of the four nearest tile centres, so no tile seams show.
- AHE: the same tiled, bilinearly interpolated adaptive equalisation *without* the contrast limit.
  OpenCV disables clipping when the clip limit is <= 0 (its clipping branch runs only for a positive
  limit), so AHE is ``createCLAHE(clipLimit=0)``. This is the interpolated AHE of Pizer et al.
  (1987), not the slow per-pixel sliding-window variant; in flat regions (the dark background of a
  fluorescence field) it stretches the few grey levels present to the full range, which is the
  noise over-amplification that motivated CLAHE.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

from protgan.core.errors import ProtganError
from protgan.enhance.config import DEFAULT_CLIP_LIMIT, DEFAULT_TILE_GRID, METHODS



def max_value(img: np.ndarray) -> int:
    """Largest representable value of an 8- or 16-bit image (255 or 65535)."""
    if img.dtype == np.uint8:
        return 255
    if img.dtype == np.uint16:
        return 65535
    raise ProtganError(f"unsupported pixel type {img.dtype} (expected uint8 or uint16)")


def _check(img: np.ndarray) -> None:
    if img.ndim != 2:
        raise ProtganError(f"expected a 2-D single-channel image, got shape {img.shape}")
    max_value(img)


def equalize_lut(img: np.ndarray) -> np.ndarray:
    """Global HE by a histogram/CDF lookup table, any bit depth (OpenCV's equalizeHist formula).

    A constant image is returned unchanged, as OpenCV does (there is no contrast to spread).
    """
    _check(img)
    top = max_value(img)
    hist = np.bincount(img.ravel(), minlength=top + 1)
    nonzero = np.flatnonzero(hist)
    total = img.size
    first = int(nonzero[0])
    if hist[first] == total:
        return img.copy()
    cdf = np.cumsum(hist, dtype=np.int64)
    # float32 arithmetic and round-half-to-even (cvRound) as in OpenCV, so 8-bit matches it exactly
    scale = np.float32(top) / np.float32(total - hist[first])
    lut = np.rint((cdf - hist[first]).astype(np.float32) * scale)
    lut[:first] = 0
    return np.clip(lut, 0, top).astype(img.dtype)[img]


def he(img: np.ndarray) -> np.ndarray:
    """Global histogram equalisation, same bit depth out as in."""
    _check(img)
    if img.dtype == np.uint8:
        return cv2.equalizeHist(img)
    return equalize_lut(img)


@lru_cache(maxsize=16)
def _clahe_op(clip_limit: float, tile_grid: int) -> cv2.CLAHE:
    # one OpenCV object per setting and process: creating it per image costs more than applying it
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid), int(tile_grid)))


def clahe(img: np.ndarray, clip_limit: float = DEFAULT_CLIP_LIMIT, tile_grid: int = DEFAULT_TILE_GRID) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV), same bit depth out as in.

    `clip_limit` is in OpenCV's unit: a multiple of the mean histogram bin height of a tile
    (256 bins for 8-bit, 65,536 for 16-bit); <= 0 means no limit (that is AHE).
    """
    _check(img)
    if tile_grid < 1:
        raise ProtganError(f"--tile-grid {tile_grid}: must be >= 1")
    if min(img.shape) < tile_grid:
        raise ProtganError(f"image {img.shape[1]}x{img.shape[0]} is smaller than the {tile_grid}x{tile_grid} tile grid")
    return _clahe_op(float(clip_limit), int(tile_grid)).apply(img)


def ahe(img: np.ndarray, tile_grid: int = DEFAULT_TILE_GRID) -> np.ndarray:
    """Adaptive histogram equalisation: CLAHE with the clip limit disabled (OpenCV clipLimit=0)."""
    return clahe(img, clip_limit=0.0, tile_grid=tile_grid)


def get_method(name: str, clip_limit: float = DEFAULT_CLIP_LIMIT, tile_grid: int = DEFAULT_TILE_GRID) -> Callable[[np.ndarray], np.ndarray]:
    """The enhancement called `name` ("he", "ahe", "clahe") with its parameters bound."""
    if name == "he":
        return he
    if name == "ahe":
        return lambda img: ahe(img, tile_grid)
    if name == "clahe":
        return lambda img: clahe(img, clip_limit, tile_grid)
    raise ProtganError(f"--methods: unknown method {name!r} (expected one of {', '.join(METHODS)})")


def parse_methods(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`"he,clahe"` -> ("he", "clahe") in the fixed order he, ahe, clahe; unknown names are an error."""
    names = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise ProtganError(f"--methods {spec!r}: expected a comma list of {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)
