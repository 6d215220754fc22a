"""orientation_coherence: lines score high at any angle, dots and noise low (the actin-fibre measure of issue 17)."""

import math

import cv2
import numpy as np
import pytest

from protgan.evaluation.texture import mean_coherence, orientation_coherence


def parallel_lines(angle_deg: float, size: int = 64, spacing: int = 5) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    a = math.radians(angle_deg)
    d = np.array([math.cos(a), math.sin(a)])
    n = np.array([-d[1], d[0]])
    c = np.array([size / 2, size / 2])
    for off in range(-size, size, spacing):
        p, q = c + off * n - size * d, c + off * n + size * d
        cv2.line(img, tuple(int(round(v)) for v in p), tuple(int(round(v)) for v in q), 1.0, 1)
    return img


def dots(size: int = 64, n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for x, y in rng.integers(4, size - 4, (n, 2)):
        cv2.circle(img, (int(x), int(y)), 2, 1.0, -1)
    return cv2.GaussianBlur(img, (0, 0), 0.8)


@pytest.mark.parametrize("angle", [0, 30, 45, 80, 135])
def test_parallel_lines_are_coherent_at_any_angle(angle):
    assert orientation_coherence(parallel_lines(angle)) > 0.85


def test_dots_and_noise_are_not():
    noise = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    lines = orientation_coherence(parallel_lines(30))
    for img in (dots(), noise):  # a dot's rim is locally an edge, so dots keep some coherence, far below lines
        assert orientation_coherence(img) < 0.45 < lines - 0.4


def test_scale_invariant_and_flat_is_nan():
    img = parallel_lines(20)
    assert orientation_coherence(img * 7.0) == pytest.approx(orientation_coherence(img), rel=1e-5)
    assert math.isnan(orientation_coherence(np.zeros((32, 32))))
    with pytest.raises(ValueError):
        orientation_coherence(np.zeros((2, 8, 8)))


def test_mean_skips_flat_images():
    mean, std, n = mean_coherence([parallel_lines(0), parallel_lines(90), np.zeros((64, 64))])
    assert n == 2 and mean > 0.7 and std >= 0
