"""Distances between feature sets: Frechet distance (FID), KID's unbiased MMD^2, and the nearest-
neighbour geometry of improved precision / recall and of memorisation.

FID is biased upwards at small sample sizes, so KID (Binkowski et al. 2018: unbiased MMD^2 with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, mean and std over random subsets) is reported
beside it.

Improved precision and recall (Kynkaanniemi et al. 2019): the k-nearest-neighbour radius of every
feature vector (distance to its k-th nearest neighbour in its own set, itself excluded) turns a set
into a union of balls, its estimated manifold. precision = share of fake vectors inside the real
manifold (fidelity); recall = share of real vectors inside the fake manifold (diversity). k = 3 as
in the paper. Pairwise distances are computed in row blocks with torch (GPU when the features are
there), never as one N x M matrix of a 50k-image set.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from protgan.core.errors import ProtganError

PR_K = 3  # the paper's neighbourhood size
_BLOCK = 2048  # rows of a distance block: 2048 x 50k float64 = 800 MB at most, far less at class scale



def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64, the covariance with n-1 like pytorch-fid's np.cov."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ProtganError(f"FID needs at least 2 images, got {feats.shape[0] if feats.ndim == 2 else 0}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2).

    Tr((S1 S2)^1/2) is computed as the sum of sqrt of the eigenvalues of the symmetric PSD matrix
    S1^1/2 S2 S1^1/2 (same spectrum as S1 S2): exact, and stable for the singular covariances that
    fewer images than feature dimensions give (where scipy's sqrtm needs an eps on the diagonal).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ProtganError(f"feature sets of different dimensions: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    s1h = _psd_sqrt(sigma1)
    m = s1h @ sigma2 @ s1h
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID of two feature sets (N x D). With fewer images than dimensions (a rare class, 2048-d
    Inception) it works in sample space, exactly: with A, B the centred features,
    Tr((S1 S2)^1/2) = nuclear norm of A B^T / sqrt((n1 - 1)(n2 - 1)), an n1 x n2 SVD instead of
    two D x D eigendecompositions."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    n1, n2 = f1.shape[0], f2.shape[0]
    if min(n1, n2) < 2:
        raise ProtganError(f"FID needs at least 2 images in each set, got {n1} and {n2}")
    if f1.shape[1] != f2.shape[1]:
        raise ProtganError(f"feature sets of different dimensions: {f1.shape[1]} vs {f2.shape[1]}")
    if min(n1, n2) >= f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a, b = f1 - mu1, f2 - mu2
    c1, c2 = n1 - 1, n2 - 1
    diff = mu1 - mu2
    tr_covmean = float(np.linalg.svd(a @ b.T, compute_uv=False).sum()) / math.sqrt(c1 * c2)
    return float(diff @ diff + (a * a).sum() / c1 + (b * b).sum() / c2 - 2.0 * tr_covmean)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel: (x.y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples with the polynomial kernel (diagonals excluded)."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of m images each, drawn without
    replacement within a subset (the torch-fidelity / Binkowski protocol).

    m = min(subset_size, half the smaller set): with subsets as large as a small set (a rare class)
    every subset would be the whole set and the std would read 0; at half, the subsets differ and
    the std says how much the estimate moves with the sample. Sets of 2000+ images use subset_size.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(subset_size, max(2, min(f1.shape[0], f2.shape[0]) // 2))
    if m < 2:
        raise ProtganError(f"KID needs at least 2 images in each set, got {f1.shape[0]} and {f2.shape[0]}")
    if subsets < 1:
        raise ProtganError(f"--kid-subsets {subsets}: must be at least 1")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        values[s] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())



# ----------------------------------------------------------------------------------------------
# Nearest neighbours (torch, in row blocks)
# ----------------------------------------------------------------------------------------------

def as_tensor(feats: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """float64 2-D tensor (float64: the squared-norm expansion then loses ~1e-12, never a NN order of
    the tests' brute force; features are small next to the networks that make them)."""
    t = torch.as_tensor(feats)
    if t.ndim != 2:
        raise ProtganError(f"features must be N x D, got shape {tuple(t.shape)}")
    return t.to(device=device or t.device, dtype=torch.float64)


def _block_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Euclidean distances of the rows of a block `a` to every row of `b` (||a||^2 + ||b||^2 - 2ab)."""
    d2 = (a * a).sum(1, keepdim=True) + b_sq[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_(min=0.0).sqrt_()


def knn_radii(feats: np.ndarray | torch.Tensor, k: int = PR_K, block: int = _BLOCK) -> torch.Tensor:
    """Distance of every row to its k-th nearest neighbour among the other rows (itself excluded)."""
    x = as_tensor(feats)
    n = x.shape[0]
    if n < k + 1:
        raise ProtganError(f"k-nearest-neighbour radii with k={k} need at least {k + 1} images, got {n}")
    sq = (x * x).sum(1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for s in range(0, n, block):
        d = _block_distances(x[s:s + block], x, sq)
        d[torch.arange(d.shape[0], device=x.device), torch.arange(s, s + d.shape[0], device=x.device)] = math.inf
        out[s:s + block] = d.topk(k, dim=1, largest=False).values[:, k - 1]
    return out


def nearest_neighbours(query: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor,
                       block: int = _BLOCK, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of every query row's nearest row of `ref`. `exclude_self`: query is ref and a
    row's own entry does not count (leave-one-out)."""
    q, r = as_tensor(query), as_tensor(ref)
    r = r.to(q.device)
    if r.shape[0] < (2 if exclude_self else 1):
        raise ProtganError(f"nearest neighbours need at least {2 if exclude_self else 1} reference images")
    sq = (r * r).sum(1)
    dist = torch.empty(q.shape[0], dtype=q.dtype, device=q.device)
    idx = torch.empty(q.shape[0], dtype=torch.long, device=q.device)
    for s in range(0, q.shape[0], block):
        d = _block_distances(q[s:s + block], r, sq)
        if exclude_self:
            d[torch.arange(d.shape[0], device=q.device), torch.arange(s, s + d.shape[0], device=q.device)] = math.inf
        dist[s:s + block], idx[s:s + block] = d.min(dim=1)
    return dist.cpu().numpy(), idx.cpu().numpy()


def manifold_coverage(query: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor,
                      ref_radii: torch.Tensor, block: int = _BLOCK) -> float:
    """Share of query rows inside at least one ball (ref_j, radius_j): the paper's f(phi, Phi)."""
    q, r = as_tensor(query), as_tensor(ref)
    r, radii = r.to(q.device), ref_radii.to(q.device)
    sq = (r * r).sum(1)
    inside = torch.zeros((), dtype=torch.long, device=q.device)
    for s in range(0, q.shape[0], block):
        d = _block_distances(q[s:s + block], r, sq)
        inside += (d <= radii[None, :]).any(dim=1).sum()  # stays on the device: one host sync at the end
    return int(inside) / q.shape[0]


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor,
                     k: int = PR_K) -> tuple[float, float]:
    """Improved (precision, recall) of `fake` against `real` with k-NN manifolds (Kynkaanniemi et al.)."""
    r, f = as_tensor(real), as_tensor(fake)
    if r.shape[1] != f.shape[1]:
        raise ProtganError(f"feature sets of different dimensions: {r.shape[1]} vs {f.shape[1]}")
    f = f.to(r.device)
    precision = manifold_coverage(f, r, knn_radii(r, k))
    recall = manifold_coverage(r, f, knn_radii(f, k))
    return precision, recall
