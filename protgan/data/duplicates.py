"""Near-duplicate images by a perceptual hash: the one module that owns "these images are the same field".

HPA images come in near-identical groups (the same field re-imaged, re-encoded or re-cropped:
bestfitting removed ~6000 duplicate external images by hashing, pudae deduplicated across splits with
phash). A twin in the training fold and one in validation inflates every cross-validated number, so the
folds keep each group in one fold (protgan.data.folds) and synthetic copies of real images are refused.

The hash is a 64-bit DCT perceptual hash (the phash of Zauner 2010 / `imagehash.phash`), computed on the
protein (green) channel: the image resized to 32 x 32 (area average), its 2-D DCT, the 8 x 8
lowest-frequency coefficients, one bit per coefficient: above their median.

Two images are duplicates when (1) their hashes differ in at most `DEFAULT_HAMMING` (16 of 64) bits and
(2) their 64 x 64 thumbnails (area-resized, Gaussian blur sigma 1 px) correlate at >= `DEFAULT_NCC` (0.85,
normalised cross-correlation, best over shifts of up to 8 thumbnail pixels = 12.5% of the field).
The hash alone does not separate: on the 200 real HPA fields of ../shared/hpa-sample, distinct fields
come as close as 12 bits, while a copy shifted by 2% of the field is up to 18 bits away (a DCT hash is not
shift-invariant); the hash is the cheap exhaustive filter (popcount over all pairs, seconds for 31k
images) and the correlation the check (distinct real fields: at most 0.70; resized, JPEG re-encoded and
shifted copies: at least 0.93). A group is a connected component of that relation (union-find), so A~B
and B~C puts A, B, C together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from protgan.data.channels import CHANNEL_ORDER
from protgan.data.dataset import ImageSet
from protgan.core.errors import ProtganError
from protgan.data.imageio import read_channel_raw, to_uint8

HASH_SIZE = 8  # 8 x 8 = 64 bits
DCT_SIZE = 32  # the image is reduced to 32 x 32 before the DCT (imagehash: highfreq_factor 4)
DEFAULT_HAMMING = 16  # bits of 64: the candidate filter; see the module docstring and README (duplicates)
DEFAULT_NCC = 0.85  # thumbnail correlation that confirms a candidate pair
THUMB = 64  # thumbnail side (px)
MAX_SHIFT = 8  # thumbnail pixels searched each way
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def phash(img: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of one 2-D image (8- or 16-bit or float)."""
    a = _as_float(img)
    a = cv2.resize(a, (DCT_SIZE, DCT_SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(a)[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def thumbnail(img: np.ndarray) -> np.ndarray:
    """THUMB x THUMB uint8 thumbnail (area-resized, blurred, stretched to 0..255) for the correlation check."""
    a = cv2.resize(_as_float(img), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    a = cv2.GaussianBlur(a, (0, 0), 1.0)
    lo, hi = float(a.min()), float(a.max())
    return np.round((a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)).astype(np.uint8)


def _as_float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint16:
        a = to_uint8(a)
    return a.astype(np.float32)


def correlation(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """Best normalised cross-correlation of two thumbnails over shifts of up to max_shift px (symmetric:
    the larger of a's centre searched in b and b's centre in a)."""
    def one(x: np.ndarray, y: np.ndarray) -> float:
        t = x[max_shift:-max_shift, max_shift:-max_shift].astype(np.float32)
        if t.std() == 0:  # a flat image matches only a flat image
            return 1.0 if y.std() == 0 else 0.0
        return float(cv2.matchTemplate(y.astype(np.float32), t, cv2.TM_CCOEFF_NORMED).max())
    return max(one(a, b), one(b, a))


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between uint64 hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return _POPCOUNT[x[..., None].view(np.uint8)].sum(-1, dtype=np.int64)


@dataclass
class Fingerprints:
    """Hash and thumbnail per image, in the order of `ids`."""

    ids: list[str]
    hashes: np.ndarray  # (N,) uint64
    thumbs: np.ndarray  # (N, THUMB, THUMB) uint8


def fingerprint(img: np.ndarray) -> tuple[np.uint64, np.ndarray]:
    return phash(img), thumbnail(img)


def hash_channel(channels_found: Sequence[str]) -> str:
    """The channel hashed: the protein (green) when present, else the first one in red, green, blue, yellow order."""
    if "green" in channels_found:
        return "green"
    for c in CHANNEL_ORDER:
        if c in channels_found:
            return c
    raise ProtganError("no image channel to hash")


def fingerprint_images(ds: ImageSet, channel: str | None = None, workers: int = 2,
                       on_done: Callable[[int], None] | None = None) -> Fingerprints:
    """Fingerprints of every Id of `ds` from `channel` (default: `hash_channel`)."""
    channel = channel or hash_channel(ds.channels_found())

    def one(id_: str) -> tuple[np.uint64, np.ndarray]:
        out = fingerprint(read_channel_raw(ds.path(id_, channel)))
        if on_done is not None:
            on_done(1)
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # cv2 decodes without the GIL
        got = list(pool.map(one, ds.ids))
    hashes = np.array([h for h, _ in got], np.uint64)
    thumbs = np.stack([t for _, t in got]) if got else np.zeros((0, THUMB, THUMB), np.uint8)
    return Fingerprints(list(ds.ids), hashes, thumbs)


def close_pairs(a: Fingerprints, b: Fingerprints | None = None, max_distance: int = DEFAULT_HAMMING,
                min_ncc: float = DEFAULT_NCC, chunk: int = 1024) -> list[tuple[int, int, int, float]]:
    """(i, j, hamming, correlation) of duplicate pairs: i < j within `a`, or every (i in a, j in b).
    Exhaustive over the hashes in row chunks (31k images: ~5e8 pairs, seconds), then the thumbnail check."""
    other = a if b is None else b
    out: list[tuple[int, int, int, float]] = []
    for start in range(0, len(a.hashes), chunk):
        d = hamming(a.hashes[start:start + chunk, None], other.hashes[None, :])
        for i, j in zip(*np.nonzero(d <= max_distance)):
            gi = int(i) + start
            if b is None and gi >= j:
                continue
            r = correlation(a.thumbs[gi], other.thumbs[j])
            if r >= min_ncc:
                out.append((gi, int(j), int(d[i, j]), r))
    return out


@dataclass
class DuplicateGroups:
    """Groups of near-duplicate images (only groups of 2 or more are listed)."""

    ids: list[str]
    group_of: dict[str, str]  # Id -> its group's name (the first member's Id; a singleton: itself)
    groups: list[list[str]]  # members of each group of size >= 2, in Id order of first appearance
    max_distance: int
    min_ncc: float
    pairs: list[tuple[str, str, int, float]]  # the duplicate pairs found (Id, Id, hamming, correlation)

    @property
    def n_duplicates(self) -> int:
        """Images beyond the first of each group (what deduplication would remove)."""
        return sum(len(g) - 1 for g in self.groups)


def group_duplicates(fp: Fingerprints, max_distance: int = DEFAULT_HAMMING,
                     min_ncc: float = DEFAULT_NCC) -> DuplicateGroups:
    """Connected components (union-find) of the duplicate relation."""
    ids = fp.ids
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = close_pairs(fp, None, max_distance, min_ncc)
    for i, j, _, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)  # the earliest Id names the group
    members: dict[int, list[str]] = {}
    for k, id_ in enumerate(ids):
        members.setdefault(find(k), []).append(id_)
    group_of = {id_: ids[root] for root, ms in members.items() for id_ in ms}
    groups = [ms for ms in members.values() if len(ms) > 1]
    return DuplicateGroups(list(ids), group_of, groups, max_distance, min_ncc,
                           [(ids[i], ids[j], d, r) for i, j, d, r in pairs])


def find_duplicates(ds: ImageSet, max_distance: int = DEFAULT_HAMMING, min_ncc: float = DEFAULT_NCC,
                    channel: str | None = None, workers: int = 2,
                    on_done: Callable[[int], None] | None = None) -> DuplicateGroups:
    return group_duplicates(fingerprint_images(ds, channel, workers, on_done), max_distance, min_ncc)


def duplicate_groups(ds: ImageSet, log: Callable[[str], None] | None = None) -> dict[str, str]:
    """Id -> group name, for the folds (`load_or_make_folds(..., groups=lambda: duplicate_groups(ds))`)."""
    found = find_duplicates(ds)
    if log is not None:
        log(f"duplicates: {len(found.groups)} groups of near-duplicate images ({found.n_duplicates} extra copies; "
            f"phash <= {found.max_distance} bits and thumbnail correlation >= {found.min_ncc}): each kept in one fold")
    return found.group_of


def refuse_synthetic_copies(syn: ImageSet, val: ImageSet, channels: Sequence[str], where: str = "--synthetic",
                            max_distance: int = DEFAULT_HAMMING, min_ncc: float = DEFAULT_NCC) -> None:
    """Raise (one line) when a synthetic image is a near-duplicate of a validation image: a GAN that
    copied a real image would put that image's twin into the training part of its own fold."""
    ch = hash_channel([c for c in channels])
    hits = close_pairs(fingerprint_images(syn, ch), fingerprint_images(val, ch), max_distance, min_ncc)
    if hits:
        i, j, d, r = hits[0]
        raise ProtganError(f"{where}: synthetic image {syn.ids[i]!r} is a near-copy of validation image "
                           f"{val.ids[j]!r} ({ch} channel: phash {d} bits apart, correlation {r:.2f}; "
                           f"{len(hits)} such pairs); remove them (protgan info --duplicates)")
