"""Evaluation metrics against cases with known answers."""

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage

from vaegan_jax import metrics


def test_frechet_distance_of_a_set_with_itself_is_zero(rng):
  x = rng.normal(size=(300, 16))
  assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_scipy_sqrtm_on_the_sample_statistics(rng):
  a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
  b = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 0.7
  mu_a, mu_b = a.mean(0), b.mean(0)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  reference = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * np.real(scipy.linalg.sqrtm(s_a @ s_b)))
  assert metrics.frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)


def test_frechet_distance_of_two_gaussians_matches_the_closed_form(rng):
  # Diagonal covariances commute: FD = |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
  mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
  sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
  a = mu_a + sd_a * rng.normal(size=(200_000, 3))
  b = mu_b + sd_b * rng.normal(size=(200_000, 3))
  closed = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
  assert metrics.frechet_distance(a, b) == pytest.approx(closed, rel=0.02)


def test_frechet_distance_rejects_bad_shapes():
  with pytest.raises(ValueError, match="widths differ"):
    metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="n >= 2"):
    metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_kernel_distance_equals_a_direct_double_loop_and_is_unbiased(rng):
  a, b = rng.normal(size=(7, 4)), rng.normal(size=(9, 4)) + 0.3
  k = lambda x, y: (x @ y / 4 + 1) ** 3
  aa = np.mean([k(a[i], a[j]) for i in range(7) for j in range(7) if i != j])
  bb = np.mean([k(b[i], b[j]) for i in range(9) for j in range(9) if i != j])
  ab = np.mean([k(x, y) for x in a for y in b])
  assert metrics.kernel_distance(a, b) == pytest.approx(aa + bb - 2 * ab, rel=1e-10)
  # Same distribution: near 0 (unbiased); shifted: clearly positive.
  same = [metrics.kernel_distance(rng.normal(size=(100, 8)), rng.normal(size=(100, 8))) for _ in range(20)]
  assert abs(np.mean(same)) < 0.05
  assert metrics.kernel_distance(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 1.0) > 0.5


def test_laplacian_variance_matches_scipy_and_sharpness_ratio_of_itself_is_one(rng):
  x = rng.integers(0, 256, size=(5, 12, 10, 3), dtype=np.uint8)
  gray = (x / 255.0) @ np.array([0.299, 0.587, 0.114])
  lap = np.stack([scipy.ndimage.laplace(g)[1:-1, 1:-1] for g in gray])
  np.testing.assert_allclose(metrics.laplacian_variance(x), lap.reshape(5, -1).var(axis=1), rtol=1e-10)
  assert metrics.sharpness_ratio(x, x) == pytest.approx(1.0)
  # The same images in [-1, 1] floats give the same figure; a blur lowers it.
  assert metrics.sharpness_ratio(x / 127.5 - 1.0, x) == pytest.approx(1.0)
  blurred = scipy.ndimage.uniform_filter(x.astype(np.float64), size=(1, 3, 3, 1)) / 127.5 - 1.0
  assert metrics.sharpness_ratio(blurred, x) < 0.3
  with pytest.raises(ValueError, match="expected images"):
    metrics.laplacian_variance(np.zeros((4, 8, 8)))


def test_attribute_vectors_recover_a_planted_direction(rng):
  n, latent = 4000, 16
  direction = rng.normal(size=latent)
  attrs = rng.random((n, 2)) < np.array([0.3, 0.6])
  z = rng.normal(size=(n, latent)) + attrs[:, :1] * direction  # only attribute 0 moves z
  v = metrics.attribute_vectors(z, attrs)
  cosine = v[0] @ direction / (np.linalg.norm(v[0]) * np.linalg.norm(direction))
  assert cosine > 0.99 and np.linalg.norm(v[0]) == pytest.approx(np.linalg.norm(direction), rel=0.05)
  assert np.linalg.norm(v[1]) < 0.2 * np.linalg.norm(direction)
  # Exact on a tiny case; NaN where an attribute never occurs.
  z = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
  a = np.array([[1, 0], [1, 0], [0, 0]])
  v = metrics.attribute_vectors(z, a)
  np.testing.assert_allclose(v[0], [2.0 - 0.0, 1.0 - 4.0])
  assert np.all(np.isnan(v[1]))
