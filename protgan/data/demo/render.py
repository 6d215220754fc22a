"""Rendering one HPA-like field of cells: red microtubules, green protein, blue nuclei, yellow ER.

Geometry is specified in pixels of a 512 x 512 HPA field ("ref px") and drawn at an internal
resolution R = min(size, max(256, size // 2)); the field is then upsampled to the output size, where
camera noise is added. Cell shapes come from an anisotropic, warped Voronoi partition computed at
R / 2 (the smooth distance fields are upsampled, so borders stay smooth). Textures (mottle, reticular
network, low-frequency modulation) are cut from noise banks made once per process from a fixed seed,
at a random offset and orientation, so each image costs a crop instead of a blur.

Everything random comes from the `rng` passed in, in a fixed order: the same seed gives the same
bytes on the same platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import cv2
import numpy as np

REF = 512.0  # geometry unit: pixels of a 512 x 512 field
MIN_SIZE, MAX_SIZE = 32, 2048
BANK_SEED = 20_180_726  # fixed: the noise banks are part of the generator, not of the sample

# Per-channel brightness (peak level in 8-bit units, log-normal across images), calibrated so the
# per-channel mean and 99th percentile land near the real sample's (see README, demo-data).
CHANNEL_PEAK = {"red": 120.0, "green": 165.0, "blue": 165.0, "yellow": 185.0}
CHANNEL_SPREAD = 0.45  # log-normal sigma of the per-image gain
READ_NOISE = 2.2  # camera read noise (8-bit units) before the black-level offset
BLACK_OFFSET = 4.0  # subtracted then clipped at 0: the real images' background is mostly exact 0


def internal_size(size: int) -> int:
    return min(size, max(256, size // 2))


# ----------------------------------------------------------------------------- noise banks
@dataclass(frozen=True)
class NoiseBank:
    """Unit-variance textures of size B x B (B = 2R) at resolution R, plus white noise for shot noise."""

    fine: np.ndarray  # ~1 px correlation: grain
    mottle: np.ndarray  # ~5 ref px blobs: nuclear texture, speckles
    reticular: np.ndarray  # 0..1 fine network: ER
    low: np.ndarray  # ~40 ref px: intensity modulation, outline irregularity
    white: np.ndarray  # at the output size (B = 2S): camera read noise in 8-bit units


def _norm(a: np.ndarray) -> np.ndarray:
    a = a - a.mean()
    return (a / (a.std() + 1e-8)).astype(np.float32)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), max(sigma, 0.3), borderType=cv2.BORDER_REFLECT)


@lru_cache(maxsize=4)
def noise_bank(r: int, size: int) -> NoiseBank:
    rng = np.random.default_rng(BANK_SEED)
    b = 2 * r
    k = r / REF
    base = rng.standard_normal((b, b), dtype=np.float32)
    fine = _norm(_blur(base, 0.6))
    mottle = _norm(_blur(rng.standard_normal((b, b), dtype=np.float32), 3.0 * k * 2))
    # Zero crossings of band-pass noise form a connected mesh: the ER's reticular look.
    bp = _norm(_blur(base, 1.1 * k * 2) - _blur(base, 2.2 * k * 2))
    reticular = np.exp(-((bp / 0.45) ** 2)).astype(np.float32)
    low = _norm(_blur(rng.standard_normal((b, b), dtype=np.float32), 40.0 * k * 2))
    white = READ_NOISE * rng.standard_normal((2 * size, 2 * size), dtype=np.float32)
    return NoiseBank(fine, mottle, reticular, low, white)


def crop(rng: np.random.Generator, bank: np.ndarray, n: int) -> np.ndarray:
    """An n x n window of a bank at a random offset, flip and transpose (8 orientations)."""
    oy, ox = rng.integers(0, bank.shape[0] - n + 1, size=2)
    flip = rng.integers(0, 8)
    a = bank[oy : oy + n, ox : ox + n]
    if flip & 1:
        a = a[::-1]
    if flip & 2:
        a = a[:, ::-1]
    if flip & 4:
        a = a.T
    return a


# ----------------------------------------------------------------------------- geometry
@dataclass
class Field:
    """Cells of one field, in internal-resolution pixels, and the masks/fields derived from them."""

    r: int  # internal resolution
    k: float  # internal px per ref px
    cx: np.ndarray
    cy: np.ndarray
    theta: np.ndarray
    elong: np.ndarray
    rad: np.ndarray  # cell radius
    nr: np.ndarray  # nucleus radius
    mtoc: np.ndarray  # N x 2 (x, y): centrosome, beside the nucleus
    side: np.ndarray  # angle from the nucleus centre to the MTOC (Golgi side)
    labels: np.ndarray  # R x R int32, 0 = background, i + 1 = cell i
    cell: np.ndarray  # R x R float 0..1 (soft)
    dist: np.ndarray  # R x R normalised distance to the own cell's centre (0 at centre, ~1 at edge)
    membrane: np.ndarray  # R x R float 0..1: cell borders (between cells and toward background)
    nucleus: np.ndarray  # R x R float 0..1 (anti-aliased)
    nucleoli: np.ndarray  # R x R float 0..1
    nucleoli_centres: list[tuple[float, float, float]]  # (x, y, radius)


def _place_cells(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell centres (M x 2, ref px) on a jittered hexagonal lattice with random gaps, and nucleus radii
    kept below a third of the distance to the nearest neighbour. Density varies per image."""
    spacing = float(np.exp(rng.uniform(np.log(85.0), np.log(190.0))))
    margin = 0.3 * spacing
    lo, hi = -margin, REF + margin
    rows = int((hi - lo) / (0.866 * spacing)) + 1
    cols = int((hi - lo) / spacing) + 1
    jj, ii = np.mgrid[0:rows, 0:cols]
    x = lo + (ii + 0.5 * (jj % 2)) * spacing
    y = lo + jj * 0.866 * spacing
    pts = np.stack([x.ravel(), y.ravel()], 1) + rng.uniform(-0.3, 0.3, (rows * cols, 2)) * spacing
    keep = rng.uniform(0, 1, len(pts)) >= rng.uniform(0.05, 0.55)  # gaps: some fields are sparse
    pts = pts[keep] if keep.sum() >= 2 else pts[:2]
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
    too_close = np.tril(d < 48.0, k=-1).any(axis=1)  # of two crowded centres, keep the first
    pts, d = pts[~too_close], d[~too_close][:, ~too_close]
    np.fill_diagonal(d, np.inf)
    nr = np.minimum(rng.uniform(15.0, 30.0, len(pts)), 0.36 * d.min(axis=1))
    return pts, nr, spacing


def _polygons(cx, cy, a, b, ang, rng, wobble: float, npts: int = 28) -> np.ndarray:
    """N x npts x 2 outlines of wobbly ellipses (float)."""
    t = np.linspace(0, 2 * np.pi, npts, endpoint=False)[None, :]
    n = len(cx)
    ph = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    amp = rng.uniform(0, wobble, (n, 3, 1))
    rr = 1 + (amp[:, 0] * np.cos(2 * t + ph[:, 0]) + amp[:, 1] * np.cos(3 * t + ph[:, 1]) + amp[:, 2] * np.cos(5 * t + ph[:, 2]))
    x0 = a[:, None] * rr * np.cos(t)
    y0 = b[:, None] * rr * np.sin(t)
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.stack([cx[:, None] + x0 * c - y0 * s, cy[:, None] + x0 * s + y0 * c], axis=-1)


SHIFT = 4  # sub-pixel bits for cv2 drawing


def _fill(canvas: np.ndarray, polys: np.ndarray | list, value: float = 255) -> None:
    pts = [np.round(p * (1 << SHIFT)).astype(np.int32) for p in polys]
    if pts:
        cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_AA, shift=SHIFT)


def _lines(canvas: np.ndarray, curves: np.ndarray, value: float = 255, thickness: int = 1) -> None:
    if len(curves):
        pts = list(np.round(curves * (1 << SHIFT)).astype(np.int32))
        # LINE_8 + the caller's blur: ~8x faster than LINE_AA for thousands of short curves
        cv2.polylines(canvas, pts, False, value, thickness=thickness, lineType=cv2.LINE_8, shift=SHIFT)


def make_field(rng: np.random.Generator, r: int, bank: NoiseBank) -> Field:
    k = r / REF
    pts, nr_ref, spacing = _place_cells(rng)
    n = len(pts)
    field_theta = rng.uniform(0, np.pi)
    theta = field_theta + rng.normal(0, 0.6, n)
    elong = np.exp(rng.uniform(0.0, np.log(2.2), n))
    rad_ref = nr_ref * rng.uniform(2.4, 3.6, n)

    # Cell partition at G = R/2: anisotropic weighted Voronoi on warped coordinates. Each cell only
    # reaches ~1.3 radii, so it is evaluated in its own window (running nearest / second nearest).
    g = r // 2 if r >= 128 else r
    step = REF / g
    ax = (np.arange(g, dtype=np.float32) + 0.5) * step
    low_g = cv2.resize(np.ascontiguousarray(crop(rng, bank.low, r)), (g, g), interpolation=cv2.INTER_AREA)
    low2_g = cv2.resize(np.ascontiguousarray(crop(rng, bank.low, r)), (g, g), interpolation=cv2.INTER_AREA)
    warp = 22.0
    yy = ax[:, None] + warp * low_g
    xx = ax[None, :] + warp * low2_g
    d1 = np.full((g, g), 9.0, np.float32)
    d2 = np.full((g, g), 9.0, np.float32)
    lab = np.zeros((g, g), np.int32)
    for i in range(n):
        reach = rad_ref[i] * np.sqrt(elong[i]) * 1.35 + 3 * warp
        x0, x1 = max(int((pts[i, 0] - reach) / step), 0), min(int((pts[i, 0] + reach) / step) + 2, g)
        y0, y1 = max(int((pts[i, 1] - reach) / step), 0), min(int((pts[i, 1] + reach) / step) + 2, g)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = xx[y0:y1, x0:x1] - np.float32(pts[i, 0])
        dy = yy[y0:y1, x0:x1] - np.float32(pts[i, 1])
        c, s_, e = np.float32(np.cos(theta[i])), np.float32(np.sin(theta[i])), np.float32(np.sqrt(elong[i]))
        u = (dx * c + dy * s_) / e
        v = (dy * c - dx * s_) * e
        di = np.sqrt(u * u + v * v) / np.float32(rad_ref[i])
        w1, w2, wl = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1], lab[y0:y1, x0:x1]
        closer = di < w1
        np.copyto(w2, np.where(closer, w1, np.minimum(w2, di)))
        np.copyto(w1, di, where=closer)
        np.copyto(wl, i + 1, where=closer)
    edge = 1.0 + 0.2 * low_g - d1  # > 0 inside the cell's own reach
    gap = d2 - d1  # ~0 on the border between two cells

    up = lambda a: cv2.resize(np.ascontiguousarray(a, np.float32), (r, r), interpolation=cv2.INTER_LINEAR)
    edge_r, gap_r, dist_r = up(edge), up(gap), up(d1)
    labels = cv2.resize(np.where(edge > 0, lab, 0).astype(np.uint16), (r, r), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    w = 0.045  # border half-width in normalised units (~2-4 ref px)
    cell = np.clip(edge_r / w, 0, 1) * np.clip(gap_r / w, 0, 1)
    labels[cell < 0.5] = 0
    membrane = np.exp(-(edge_r / w) ** 2) + np.exp(-(gap_r / w) ** 2) * (edge_r > 0)
    membrane = np.clip(membrane, 0, 1).astype(np.float32)

    # Nuclei: wobbly ellipses at the cell centres, elongated with the cell but less.
    cxr, cyr = pts[:, 0] * k, pts[:, 1] * k
    ne = np.sqrt(elong) ** 0.6
    na, nb = nr_ref * k * ne, nr_ref * k / ne
    nuc8 = np.zeros((r, r), np.uint8)
    _fill(nuc8, _polygons(cxr, cyr, na, nb, theta, rng, 0.06))
    nucleus = nuc8.astype(np.float32) / 255.0
    cell = np.maximum(cell, nucleus)  # a cell always holds its whole nucleus
    membrane *= 1.0 - nucleus
    orphan = (nucleus > 0.5) & (labels == 0)  # rare: part of a nucleus on a gap between cells
    if orphan.any():
        nearest = cv2.resize(lab.astype(np.uint16), (r, r), interpolation=cv2.INTER_NEAREST).astype(np.int32)
        labels[orphan] = nearest[orphan]

    # Nucleoli: 1-4 per nucleus, dark in blue, where Nucleoli proteins sit.
    nol8 = np.zeros((r, r), np.uint8)
    centres: list[tuple[float, float, float]] = []
    counts = rng.integers(1, 5, n)
    polys = []
    for i in range(n):
        rr = rng.uniform(0.0, 0.55, counts[i]) * min(na[i], nb[i])
        aa = rng.uniform(0, 2 * np.pi, counts[i])
        rad = rng.uniform(3.5, 6.5, counts[i]) * k
        for j in range(counts[i]):
            x, y = cxr[i] + rr[j] * np.cos(aa[j]), cyr[i] + rr[j] * np.sin(aa[j])
            centres.append((x, y, rad[j]))
    if centres:
        arr = np.array(centres)
        polys = _polygons(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 2] * rng.uniform(0.7, 1.0, len(arr)), rng.uniform(0, np.pi, len(arr)), rng, 0.1, 12)
        _fill(nol8, polys)
    nucleoli = (nol8.astype(np.float32) / 255.0) * nucleus

    side = rng.uniform(0, 2 * np.pi, n)
    reach = np.hypot(na * np.cos(side - theta), nb * np.sin(side - theta))
    mtoc = np.stack([cxr + (reach + 4 * k) * np.cos(side), cyr + (reach + 4 * k) * np.sin(side)], axis=1)
    return Field(r, k, cxr, cyr, theta, elong, rad_ref * k, np.sqrt(na * nb), mtoc, side, labels, cell.astype(np.float32),
                 dist_r, membrane, nucleus, nucleoli, centres)


def per_cell(f: Field, values: np.ndarray) -> np.ndarray:
    """An R x R map of one value per cell (0 on background)."""
    table = np.concatenate([[0.0], values]).astype(np.float32)
    return table[f.labels]


# ----------------------------------------------------------------------------- structures
def cell_filaments(rng, f: Field, density: float, steps: int, wiggle: float, reach: float) -> np.ndarray:
    """Microtubule-like curves: from the nuclear rim (most) or the MTOC (some) outward through the
    cytoplasm, bending as they go, stopped where they leave the cell."""
    counts = np.maximum((density * f.rad / f.k / 10.0).astype(int), 3)
    idx = np.repeat(np.arange(len(f.cx)), counts)
    m = len(idx)
    a = rng.uniform(0, 2 * np.pi, m)
    rim = f.nr[idx] * rng.uniform(0.5, 1.1, m)
    start = np.stack([f.cx[idx] + rim * np.cos(a), f.cy[idx] + rim * np.sin(a)], 1)
    from_mtoc = rng.uniform(0, 1, m) < 0.3
    start[from_mtoc] = f.mtoc[idx[from_mtoc]] + rng.normal(0, 2.0 * f.k, (int(from_mtoc.sum()), 2))
    ang0 = a + rng.normal(0, 0.6, m)
    ang = ang0[:, None] + np.cumsum(rng.normal(0, wiggle, (m, steps)), axis=1)
    step = (f.rad[idx] * reach / steps * rng.uniform(0.6, 1.1, m))[:, None]
    x = start[:, 0, None] + np.cumsum(step * np.cos(ang), axis=1)
    y = start[:, 1, None] + np.cumsum(step * np.sin(ang), axis=1)
    return _clip_to_cells(f, idx, np.stack([np.concatenate([start[:, :1], x], 1), np.concatenate([start[:, 1:], y], 1)], -1))


def _clip_to_cells(f: Field, idx: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Freeze each curve at its last point inside its own cell's ellipse (no filament leaves its cell)."""
    dx = curves[..., 0] - f.cx[idx, None]
    dy = curves[..., 1] - f.cy[idx, None]
    c, s = np.cos(f.theta[idx])[:, None], np.sin(f.theta[idx])[:, None]
    e = np.sqrt(f.elong[idx])[:, None]
    d = np.hypot((dx * c + dy * s) / e, (dy * c - dx * s) * e) / f.rad[idx, None]
    inside = np.cumprod(d < 0.98, axis=1).astype(bool)
    inside[:, 0] = True
    last = inside.sum(axis=1) - 1
    frozen = curves[np.arange(len(curves)), last][:, None, :]
    return np.where(inside[..., None], curves, frozen)


def scattered_points(rng, f: Field, per_cell_n: np.ndarray, r_lo: float, r_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Points in each cell's cytoplasm, denser near the nucleus: (M x 2, owning cell index)."""
    idx = np.repeat(np.arange(len(f.cx)), per_cell_n)
    a = rng.uniform(0, 2 * np.pi, len(idx))
    frac = np.clip(r_lo + np.abs(rng.normal(0, r_hi, len(idx))), 0, 0.97)
    e = np.sqrt(f.elong[idx])
    u, v = frac * np.cos(a) * e, frac * np.sin(a) / e
    c, s = np.cos(f.theta[idx]), np.sin(f.theta[idx])
    x = f.cx[idx] + f.rad[idx] * (u * c - v * s)
    y = f.cy[idx] + f.rad[idx] * (u * s + v * c)
    return np.stack([x, y], 1), idx


def _dots(f: Field, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    canvas = np.zeros((f.r, f.r), np.uint8)
    for (x, y), rad in zip(centres, radii):
        cv2.circle(canvas, (int(round(x * 16)), int(round(y * 16))), max(int(round(rad * 16)), 8), 255, -1, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0


def _soft(a: np.ndarray, sigma_ref: float, k: float) -> np.ndarray:
    return _blur(np.ascontiguousarray(a, np.float32), sigma_ref * k)


@dataclass
class Context:
    rng: np.random.Generator
    f: Field
    bank: NoiseBank
    mottle: np.ndarray
    fine: np.ndarray
    er: np.ndarray  # the ER pattern (yellow), reused by class 6
    mt: np.ndarray  # the microtubule pattern (red), reused by class 14

    @property
    def cytoplasm(self) -> np.ndarray:
        return self.f.cell * (1.0 - self.f.nucleus)


def g_nucleoplasm(c: Context) -> np.ndarray:
    f = c.f
    return f.nucleus * (0.8 + 0.15 * c.mottle) * (1.0 - 0.85 * f.nucleoli)


def g_nuclear_membrane(c: Context) -> np.ndarray:
    f = c.f
    k = max(1, int(round(3 * f.k)))
    inner = cv2.erode(f.nucleus, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    ring = np.clip(f.nucleus - inner, 0, 1)
    return _soft(ring, 0.8, f.k) * 1.6 * (0.85 + 0.15 * c.fine) + 0.08 * f.nucleus


def g_nucleoli(c: Context) -> np.ndarray:
    f = c.f
    return np.clip(_soft(f.nucleoli, 0.8, f.k) * 1.2, 0, 1) + 0.05 * f.nucleus


def g_fibrillar_center(c: Context) -> np.ndarray:
    f = c.f
    pts, rad = [], []
    for x, y, rr in f.nucleoli_centres:
        m = int(c.rng.integers(2, 6))
        a = c.rng.uniform(0, 2 * np.pi, m)
        d = c.rng.uniform(0, 0.7, m) * rr
        pts += list(zip(x + d * np.cos(a), y + d * np.sin(a)))
        rad += [1.3 * f.k] * m
    dots = _dots(f, np.array(pts).reshape(-1, 2), np.array(rad)) * f.nucleus
    return np.clip(_soft(dots, 0.7, f.k) * 1.8, 0, 1) + 0.06 * f.nucleus


def g_speckles(c: Context) -> np.ndarray:
    f = c.f
    # 10-25 irregular medium dots per nucleus on a weak diffuse nucleoplasm, nucleoli excluded.
    n = c.rng.integers(10, 26, len(f.cx))
    idx = np.repeat(np.arange(len(f.cx)), n)
    a = c.rng.uniform(0, 2 * np.pi, len(idx))
    d = np.sqrt(c.rng.uniform(0, 0.8, len(idx))) * f.nr[idx]
    pts = np.stack([f.cx[idx] + d * np.cos(a), f.cy[idx] + d * np.sin(a)], 1)
    dots = _dots(f, pts, c.rng.uniform(2.2, 3.6, len(idx)) * f.k)
    dots = _soft(dots, 1.0, f.k) * (0.7 + 0.3 * c.mottle)
    return f.nucleus * (1.0 - f.nucleoli) * (0.15 + 1.5 * dots)


def g_nuclear_bodies(c: Context) -> np.ndarray:
    f = c.f
    n = c.rng.integers(1, 7, len(f.cx))
    idx = np.repeat(np.arange(len(f.cx)), n)
    a = c.rng.uniform(0, 2 * np.pi, len(idx))
    d = c.rng.uniform(0, 0.7, len(idx)) * f.nr[idx]
    pts = np.stack([f.cx[idx] + d * np.cos(a), f.cy[idx] + d * np.sin(a)], 1)
    dots = _dots(f, pts, c.rng.uniform(2.5, 4.0, len(idx)) * f.k) * f.nucleus
    return np.clip(_soft(dots, 0.8, f.k) * 1.5, 0, 1) + 0.06 * f.nucleus


def g_er(c: Context) -> np.ndarray:
    return c.er


def g_golgi(c: Context) -> np.ndarray:
    f = c.f
    n = len(f.cx)
    # A compact juxtanuclear cap: a cluster of blobs on one side of the nucleus.
    m = c.rng.integers(8, 16, n)
    idx = np.repeat(np.arange(n), m)
    a = f.side[idx] + c.rng.normal(0, 0.5, len(idx))
    d = f.nr[idx] * np.sqrt(f.elong[idx]) ** 0.3 + c.rng.uniform(1, 14, len(idx)) * f.k
    pts = np.stack([f.cx[idx] + d * np.cos(a), f.cy[idx] + d * np.sin(a)], 1)
    blobs = _dots(f, pts, c.rng.uniform(3.0, 6.0, len(idx)) * f.k) * (1.0 - f.nucleus) * f.cell
    return np.clip(_soft(blobs, 1.5, f.k) * 1.3, 0, 1) * (0.8 + 0.2 * c.fine) + 0.04 * c.cytoplasm


def g_intermediate_filaments(c: Context) -> np.ndarray:
    f = c.f
    # Long wavy fibres wrapped around the nucleus (a perinuclear cage), not radiating from a point.
    n = len(f.cx)
    per = np.maximum((5.0 * f.rad / f.k / 10.0).astype(int), 8)
    idx = np.repeat(np.arange(n), per)
    m, steps = len(idx), 14
    r0 = f.nr[idx] * c.rng.uniform(1.05, 2.8, m)
    a0 = c.rng.uniform(0, 2 * np.pi, m)
    span = c.rng.uniform(1.5, 3.5, m) * np.sign(c.rng.uniform(-1, 1, m))
    t = np.linspace(0, 1, steps + 1)[None, :]
    ang = a0[:, None] + span[:, None] * t
    rr = r0[:, None] * (1 + 0.25 * np.sin(6 * t + c.rng.uniform(0, 6, (m, 1)))) * np.sqrt(f.elong[idx])[:, None] ** 0.5
    curves = np.stack([f.cx[idx, None] + rr * np.cos(ang), f.cy[idx, None] + rr * np.sin(ang)], -1)
    curves = _clip_to_cells(f, idx, curves)
    canvas = np.zeros((f.r, f.r), np.uint8)
    _lines(canvas, curves, 255, 1)
    return _soft(canvas.astype(np.float32) / 255.0, 1.1, f.k) * 1.5 * f.cell + 0.06 * c.cytoplasm


def g_actin(c: Context) -> np.ndarray:
    f = c.f
    # Straight stress fibres along each cell's long axis, plus a cortical rim at the membrane.
    n = len(f.cx)
    per = np.maximum((1.2 * f.rad / f.k / 10.0).astype(int), 4)
    idx = np.repeat(np.arange(n), per)
    m = len(idx)
    ang = f.theta[idx] + c.rng.normal(0, 0.12, m)
    off = c.rng.uniform(-0.8, 0.8, m) * f.rad[idx] / np.sqrt(f.elong[idx])
    mid_x = f.cx[idx] - off * np.sin(f.theta[idx])
    mid_y = f.cy[idx] + off * np.cos(f.theta[idx])
    half = f.rad[idx] * np.sqrt(f.elong[idx]) * 1.2
    t = np.linspace(0, 1, 9)[None, :]
    halves = []
    for sign in (1.0, -1.0):  # two halves from the middle outwards, each stopped at the cell's edge
        h = np.stack([mid_x[:, None] + sign * half[:, None] * t * np.cos(ang)[:, None],
                      mid_y[:, None] + sign * half[:, None] * t * np.sin(ang)[:, None]], -1)
        halves.append(_clip_to_cells(f, idx, h))
    curves = np.concatenate(halves)
    canvas = np.zeros((f.r, f.r), np.uint8)
    _lines(canvas, curves, 255, 1)
    fib = _soft(canvas.astype(np.float32) / 255.0, 1.0, f.k) * f.cell
    return fib * 0.9 + 0.5 * f.membrane * f.cell + 0.06 * c.cytoplasm


def g_microtubules(c: Context) -> np.ndarray:
    return c.mt


def g_centrosome(c: Context) -> np.ndarray:
    f = c.f
    two = c.rng.uniform(0, 1, len(f.cx)) < 0.5
    pts = [f.mtoc]
    rad = [np.full(len(f.cx), 3.4 * f.k)]
    if two.any():
        pts.append(f.mtoc[two] + c.rng.normal(0, 3.0 * f.k, (int(two.sum()), 2)))
        rad.append(np.full(int(two.sum()), 2.8 * f.k))
    dots = _dots(f, np.concatenate(pts), np.concatenate(rad)) * f.cell
    return np.clip(_soft(dots, 0.9, f.k) * 2.0, 0, 1) + 0.05 * c.cytoplasm


def g_plasma_membrane(c: Context) -> np.ndarray:
    f = c.f
    return f.membrane * np.sqrt(f.cell) * (0.8 + 0.2 * c.fine) * 1.3 + 0.07 * c.cytoplasm


def g_mitochondria(c: Context) -> np.ndarray:
    f = c.f
    # Short worm-like tubules in the cytoplasm, densest around the nucleus.
    n_per = np.maximum((f.rad / f.k) ** 2 / 45.0, 20).astype(int)
    pts, idx = scattered_points(c.rng, f, n_per, 0.2, 0.45)
    m = len(idx)
    steps = 4
    ang = c.rng.uniform(0, 2 * np.pi, m)[:, None] + np.cumsum(c.rng.normal(0, 0.45, (m, steps)), axis=1)
    ln = c.rng.uniform(2.0, 4.5, m)[:, None] * f.k
    x = pts[:, 0, None] + np.cumsum(ln * np.cos(ang), 1)
    y = pts[:, 1, None] + np.cumsum(ln * np.sin(ang), 1)
    curves = np.stack([np.concatenate([pts[:, :1], x], 1), np.concatenate([pts[:, 1:], y], 1)], -1)
    curves = _clip_to_cells(f, idx, curves)
    canvas = np.zeros((f.r, f.r), np.uint8)
    _lines(canvas, curves, 255, 1)
    return _soft(canvas.astype(np.float32) / 255.0, 1.0, f.k) * c.cytoplasm * 1.3


def g_aggresome(c: Context) -> np.ndarray:
    f = c.f
    has = c.rng.uniform(0, 1, len(f.cx)) < 0.8
    a = f.side + c.rng.normal(0, 0.3, len(f.cx))
    d = f.nr * np.sqrt(f.elong) ** 0.3 + 7 * f.k
    pts = np.stack([f.cx + d * np.cos(a), f.cy + d * np.sin(a)], 1)[has]
    blob = _dots(f, pts, c.rng.uniform(6.0, 10.0, int(has.sum())) * f.k) * (1.0 - f.nucleus) * f.cell
    return np.clip(_soft(blob, 1.5, f.k) * 1.5, 0, 1) + 0.08 * c.cytoplasm


def g_cytosol(c: Context) -> np.ndarray:
    f = c.f
    return c.cytoplasm * (0.75 + 0.12 * c.mottle + 0.08 * c.fine) + 0.12 * f.nucleus


def g_cytoplasmic_bodies(c: Context) -> np.ndarray:
    f = c.f
    n = c.rng.integers(1, 5, len(f.cx))
    pts, _ = scattered_points(c.rng, f, n, 0.45, 0.3)
    dots = _dots(f, pts, c.rng.uniform(3.0, 5.0, len(pts)) * f.k) * c.cytoplasm
    return np.clip(_soft(dots, 0.8, f.k) * 1.6, 0, 1) + 0.05 * c.cytoplasm


# class index -> painter of the green channel (0..~1 float at the internal resolution)
PAINTERS: dict[int, Callable[[Context], np.ndarray]] = {
    0: g_nucleoplasm,
    1: g_nuclear_membrane,
    2: g_nucleoli,
    3: g_fibrillar_center,
    4: g_speckles,
    5: g_nuclear_bodies,
    6: g_er,
    7: g_golgi,
    11: g_intermediate_filaments,
    12: g_actin,
    14: g_microtubules,
    19: g_centrosome,
    21: g_plasma_membrane,
    23: g_mitochondria,
    24: g_aggresome,
    25: g_cytosol,
    26: g_cytoplasmic_bodies,
}


# ----------------------------------------------------------------------------- the sample
def _to_uint8(rng, x: np.ndarray, gain: float, size: int, bank: NoiseBank) -> np.ndarray:
    """Signal (0..~1 at R) -> 8-bit at the output size: shot noise, upsampling (the optics' blur),
    read noise, black level, saturating rounding."""
    r = x.shape[0]
    sig = np.maximum(x, 0) * np.float32(gain)
    noisy = sig + np.sqrt(sig + 1.0) * (0.9 * crop(rng, bank.fine, r))
    if size != r:
        noisy = cv2.resize(np.ascontiguousarray(noisy, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    oy, ox = rng.integers(0, bank.white.shape[0] - size + 1, size=2)
    noisy = noisy + bank.white[oy : oy + size, ox : ox + size]
    return cv2.add(noisy, -BLACK_OFFSET, dtype=cv2.CV_8U)


def _gain(rng, channel: str) -> float:
    return float(CHANNEL_PEAK[channel] * np.exp(rng.normal(0, CHANNEL_SPREAD)))


def render_sample(
    rng: np.random.Generator | int, size: int, labels: Sequence[int], with_masks: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One field: (4 x size x size uint8 stack in red, green, blue, yellow order, masks at `size`).

    masks: `cell`, `nucleus`, `nucleoli`, `cytoplasm`, `membrane` (bool) and `labels` (int32 cell ids);
    empty when `with_masks` is False (the dataset writer does not need them).
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    unknown = [c for c in labels if c not in PAINTERS]
    if unknown:
        raise ValueError(f"no pattern for classes {unknown}")
    r = internal_size(size)
    bank = noise_bank(r, size)
    f = make_field(rng, r, bank)
    mottle = crop(rng, bank.mottle, r)
    fine = crop(rng, bank.fine, r)
    low = crop(rng, bank.low, r)

    # Blue: textured nuclei with darker nucleoli, brightness varying per cell.
    nb = per_cell(f, rng.uniform(0.55, 1.0, len(f.cx)))
    blue = f.nucleus * nb * (0.82 + 0.12 * mottle + 0.06 * fine) * (1.0 - 0.45 * f.nucleoli)
    blue = _soft(blue, 0.6, f.k)

    # Red: microtubules radiating from the MTOC, dimmer over the nucleus, plus a faint diffuse level.
    canvas = np.zeros((r, r), np.uint8)
    curves = cell_filaments(rng, f, density=14.0 * min(1.0, r / 256) ** 0.5, steps=14, wiggle=0.2, reach=1.4)
    third = len(curves) // 3
    _lines(canvas, curves[:third], 255)
    _lines(canvas, curves[third : 2 * third], 170)
    _lines(canvas, curves[2 * third :], 110)
    mt = _soft(canvas.astype(np.float32) / 255.0, 0.9, f.k) * 1.1
    mt = mt * f.cell * (1.0 - 0.55 * f.nucleus) + 0.04 * f.cell * (1.0 - 0.6 * f.nucleus)
    red = mt * per_cell(f, rng.uniform(0.6, 1.0, len(f.cx)))

    # Yellow: fine reticular ER network, densest around the nucleus, plus the nuclear envelope.
    ret = crop(rng, bank.reticular, r)
    near = np.exp(-np.maximum(f.dist - 0.25, 0) / 0.35)
    er = f.cell * (1.0 - 0.8 * f.nucleus) * (ret * (0.2 + 0.9 * near) + 0.03) * (0.9 + 0.1 * low)
    yellow = er * per_cell(f, rng.uniform(0.6, 1.0, len(f.cx)))

    gains = {ch: _gain(rng, ch) for ch in ("red", "green", "blue", "yellow")}
    red8 = _to_uint8(rng, red, gains["red"], size, bank)
    blue8 = _to_uint8(rng, blue, gains["blue"], size, bank)
    yellow8 = _to_uint8(rng, yellow, gains["yellow"], size, bank)

    # Green: the labelled compartments, each with its own strength, cell-to-cell variation. It draws
    # from its own stream, so the field and the other channels do not depend on the labels.
    rng = np.random.default_rng(rng.integers(0, 2**63))
    ctx = Context(rng, f, bank, mottle, fine, er, mt)
    green = np.zeros((r, r), np.float32)
    for c in labels:
        green += PAINTERS[c](ctx) * rng.uniform(0.6, 1.0)
    green *= per_cell(f, np.exp(rng.normal(0, 0.3, len(f.cx))))
    # Non-specific background of the antibody: a weak diffuse level in the cells, varying per image.
    green += ctx.cytoplasm * np.float32(rng.uniform(0.0, 0.06)) + f.nucleus * np.float32(rng.uniform(0.0, 0.04))
    # Exposure is set per image (as HPA does per antibody): the brightest structure sets the scale,
    # so sparse patterns (centrosome dots) are as visible as filled ones (cytosol).
    green *= np.float32(1.0 / max(float(green.max()), 0.05))
    weak = 0.35 if rng.uniform() < 0.15 else 1.0  # weak stainings exist in real data

    stack = np.stack([red8, _to_uint8(rng, green, gains["green"] * weak, size, bank), blue8, yellow8])
    return stack, (_masks(f, size) if with_masks else {})


def _masks(f: Field, size: int) -> dict[str, np.ndarray]:
    def up(a: np.ndarray, interp=cv2.INTER_LINEAR) -> np.ndarray:
        return a if f.r == size else cv2.resize(a, (size, size), interpolation=interp)

    cell = up(f.cell) > 0.5
    nucleus = up(f.nucleus) > 0.5
    return {
        "cell": cell,
        "nucleus": nucleus,
        "nucleoli": up(f.nucleoli) > 0.5,
        "cytoplasm": cell & ~nucleus,
        "membrane": up(f.membrane * np.sqrt(f.cell)) > 0.25,  # the band the plasma membrane is drawn on
        "labels": up(f.labels.astype(np.float32), cv2.INTER_NEAREST).astype(np.int32),
    }
