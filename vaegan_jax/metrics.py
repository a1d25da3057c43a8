"""Evaluation metrics: sample quality, sharpness, triplet accuracy, Parzen log-likelihood, ROC AUC,
linear probes and nearest-prototype matching of latents.

These run on the host (float64) over a few thousand feature vectors at most, after the
networks have done their work on the device; nothing here is differentiated. The exception
is the Parzen window (1.6e11 flops for MNIST's protocol), which is jitted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# 3x3 discrete Laplacian (4-neighbour), as in OpenCV's ``Laplacian(ksize=1)``.
_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"{name} must be f[n, d] with n >= 2 feature vectors, got shape {x.shape}")
  return x


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean f64[d] and covariance f64[d, d] (unbiased, ddof=1) of f[n, d] features."""
  features = _as_features(features, "features")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

  ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (Dowson & Landau 1982; Heusel
  et al. 2017, eq. 6). The trace of the matrix square root is computed as the sum of the
  square roots of the eigenvalues of the symmetric PSD matrix ``S_a^(1/2) S_b S_a^(1/2)``,
  which has the same spectrum as ``S_a S_b`` and avoids a non-symmetric ``sqrtm``.

  Args:
    features_a: f[n_a, d] feature vectors (e.g. a classifier's penultimate layer).
    features_b: f[n_b, d] feature vectors, same d.

  Returns:
    float >= 0, in squared feature units; 0 for identical sets.

  Raises:
    ValueError: if either set is not 2-D with at least 2 rows, or the widths differ.
  """
  a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
  mu_a, cov_a = gaussian_statistics(a)
  mu_b, cov_b = gaussian_statistics(b)
  w, v = np.linalg.eigh(cov_a)
  sqrt_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
  cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
  trace_sqrt = np.sum(np.sqrt(np.clip(cross, 0.0, None)))
  distance = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
  return float(max(distance, 0.0))


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Unbiased squared MMD with the cubic polynomial kernel: the KID (Bińkowski et al. 2018, eq. 7).

  ``k(x, y) = (x.y / d + 1)^3``. Unlike the Fréchet distance it is unbiased for small sets,
  so scores from a few hundred test images compare fairly.

  Args:
    features_a: f[n_a, d], n_a >= 2.
    features_b: f[n_b, d], n_b >= 2.

  Returns:
    float; its expectation is 0 when both sets come from one distribution (the estimate
    itself can be slightly negative).

  Raises:
    ValueError: as ``frechet_distance``.
  """
  a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
  d = a.shape[1]
  k_aa = (a @ a.T / d + 1.0) ** 3
  k_bb = (b @ b.T / d + 1.0) ** 3
  k_ab = (a @ b.T / d + 1.0) ** 3
  n, m = len(a), len(b)
  within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
  within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
  return float(within_a + within_b - 2.0 * k_ab.mean())


def laplacian_variance(images: np.ndarray) -> np.ndarray:
  """Per-image variance of the Laplacian, the standard focus/sharpness measure (Pech-Pacheco et al. 2000).

  Colour images are converted to luma (ITU-R BT.601 weights) first; the 3x3 Laplacian is
  applied to the interior pixels ('valid'), in units of [0, 1] intensity.

  Args:
    images: u8[n, h, w, c] (0..255) or float[n, h, w, c] in [-1, 1]; c is 1 or 3; h, w >= 3.

  Returns:
    f64[n] variances, >= 0; larger is sharper.

  Raises:
    ValueError: for another rank or channel count.
  """
  x = np.asarray(images)
  if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3]) < 3:
    raise ValueError(f"expected images [n, h>=3, w>=3, 1 or 3], got shape {x.shape}")
  x = x / 255.0 if x.dtype == np.uint8 else (np.asarray(x, np.float64) + 1.0) / 2.0
  gray = x[..., 0] if x.shape[-1] == 1 else x @ np.array([0.299, 0.587, 0.114])
  h, w = gray.shape[1:]
  lap = sum(_LAPLACIAN[i, j] * gray[:, i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3)
            if _LAPLACIAN[i, j])
  return lap.reshape(len(x), -1).var(axis=1)


def sharpness_ratio(images: np.ndarray, reference: np.ndarray) -> float:
  """Mean Laplacian variance of ``images`` over that of ``reference`` (1.0 = as sharp as the reference).

  Args:
    images: generated images, as ``laplacian_variance`` takes them.
    reference: real (test) images, same format.

  Returns:
    float >= 0.
  """
  return float(np.mean(laplacian_variance(images)) / np.mean(laplacian_variance(reference)))


def attribute_vectors(latents: np.ndarray, attributes: np.ndarray) -> np.ndarray:
  """Per attribute, mean latent of examples with it minus mean latent of those without.

  The attribute vectors of Larsen et al. 2016 (sec. 5, Figure 6: "Using the VAE/GAN model
  ... we compute the mean vector for all images with the attribute and without", v_a =
  mean z(a=1) - mean z(a=0)).

  Args:
    latents: f[n, latent] encodings (posterior means) of labelled images.
    attributes: bool or {0, 1}[n, num_attributes].

  Returns:
    f64[num_attributes, latent]; a row is NaN where an attribute is always or never present.

  Raises:
    ValueError: if the two arrays do not have the same number of rows.
  """
  z = np.asarray(latents, np.float64)
  a = np.asarray(attributes).astype(bool)
  if z.ndim != 2 or a.ndim != 2 or len(z) != len(a):
    raise ValueError(f"expected latents [n, latent] and attributes [n, k], got {z.shape} and {a.shape}")
  pos, neg = a.sum(axis=0), (~a).sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean_pos = (a.T.astype(np.float64) @ z) / pos[:, None]
    mean_neg = ((~a).T.astype(np.float64) @ z) / neg[:, None]
  return mean_pos - mean_neg


def triplet_accuracy(embeddings: np.ndarray, triplets: np.ndarray) -> float:
  """Fraction of triplets whose negative is farther from the anchor than the positive.

  TVAE's metric (Ishfaq et al. 2018, sec. 3): ``d(e_a, e_n) > d(e_a, e_p)`` with Euclidean
  d (squared or not gives the same comparison); ties count as failures.

  Args:
    embeddings: f32[n, d] (TVAE: posterior means of the test images).
    triplets: int[m, 3] rows of (anchor, positive, negative) indices into ``embeddings``.

  Returns:
    A float in [0, 1].

  Raises:
    ValueError: ``triplets`` is not [m, 3] with m >= 1.
  """
  triplets = np.asarray(triplets)
  if triplets.ndim != 2 or triplets.shape[1] != 3 or len(triplets) == 0:
    raise ValueError(f"triplets must be int[m, 3] with m >= 1, got shape {triplets.shape}")
  e = np.asarray(embeddings, np.float64)
  a, p, n = e[triplets[:, 0]], e[triplets[:, 1]], e[triplets[:, 2]]
  return float(np.mean(np.sum((a - n) ** 2, -1) > np.sum((a - p) ** 2, -1)))


@jax.jit
def _parzen_chunk(x, samples, samples_sq, bandwidths):
  """f32[S, chunk]: log (1/m) sum_j N(x_i; s_j, sigma^2 I) for each bandwidth sigma."""
  d2 = jnp.sum(x * x, 1)[:, None] + samples_sq[None] - 2.0 * jnp.dot(x, samples.T, precision="highest")
  d2 = jnp.maximum(d2, 0.0)
  m, d = samples.shape

  def one(sigma):
    return (jax.scipy.special.logsumexp(-d2 / (2.0 * sigma * sigma), axis=1) - jnp.log(m)
            - d * jnp.log(sigma) - 0.5 * d * jnp.log(2.0 * jnp.pi))

  return jax.lax.map(one, bandwidths)


def parzen_log_likelihood(x: np.ndarray, samples: np.ndarray, bandwidths, batch_size: int = 250) -> np.ndarray:
  """Log-likelihood of each row of ``x`` under a Gaussian kernel density (Parzen window) on ``samples``.

  ``log p(x) = log (1/m) sum_j N(x; s_j, sigma^2 I)``, the estimator of Breuleux et al. 2010
  that Goodfellow et al. 2014 (GAN, sec. 5) and Makhzani et al. 2015 (AAE, table 1) report on
  MNIST with 10,000 generated samples, pixels in [0, 1] and sigma chosen on a validation set.
  This one runs on the device (jitted, in chunks of ``batch_size`` rows, f32 with exact
  matrix products): 10,000 x 10,000 MNIST digits is 1.6e11 flops per split.

  Args:
    x: f[n, d] points to score (flattened images in [0, 1]).
    samples: f[m, d] kernel centres (the model's samples, same space).
    bandwidths: positive kernel standard deviations, a sequence of S floats.
    batch_size: rows of ``x`` per device call.

  Returns:
    f64[S, n]: nats per point, for each bandwidth.

  Raises:
    ValueError: shapes that do not match, or a bandwidth <= 0.
  """
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  samples = np.asarray(samples, np.float32).reshape(len(samples), -1)
  bandwidths = np.asarray(bandwidths, np.float32).reshape(-1)
  if x.shape[1] != samples.shape[1] or not len(samples) or not len(x):
    raise ValueError(f"x {x.shape} and samples {samples.shape} must be non-empty with the same dimension")
  if not len(bandwidths) or np.any(bandwidths <= 0):
    raise ValueError(f"bandwidths must be positive, got {bandwidths}")
  samples_sq = np.sum(samples.astype(np.float64) ** 2, 1).astype(np.float32)
  out = [np.asarray(_parzen_chunk(x[i:i + batch_size], samples, samples_sq, bandwidths), np.float64)
         for i in range(0, len(x), batch_size)]
  return np.concatenate(out, axis=1)


def parzen_evaluation(validation: np.ndarray, test: np.ndarray, samples: np.ndarray, bandwidths) -> dict[str, float]:
  """The Parzen-window protocol: choose sigma on ``validation``, report ``test`` with it.

  Args:
    validation, test: f[n, d] held-out points (flattened images in [0, 1]).
    samples: f[m, d] model samples (10,000 in the papers).
    bandwidths: the candidate sigmas (the GAN code: 10 values log-spaced in [0.1, 1]).

  Returns:
    ``bandwidth`` (the chosen sigma), ``validation_log_likelihood`` (its mean, nats),
    ``log_likelihood`` (mean over ``test``, nats) and ``log_likelihood_sem`` (its standard
    error, std / sqrt(n), the paper's "+-").
  """
  bandwidths = np.asarray(bandwidths, np.float64)
  val = parzen_log_likelihood(validation, samples, bandwidths).mean(axis=1)
  best = int(np.argmax(val))
  ll = parzen_log_likelihood(test, samples, bandwidths[best:best + 1])[0]
  return {"bandwidth": float(bandwidths[best]), "validation_log_likelihood": float(val[best]),
          "log_likelihood": float(ll.mean()), "log_likelihood_sem": float(ll.std(ddof=1) / np.sqrt(len(ll)))}


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """Area under the ROC curve of ``scores`` for detecting ``positive`` (sklearn's roc_auc_score).

  Args:
    scores: f[n], higher = more anomalous.
    positive: bool[n], True for the anomalies; both classes must occur.

  Raises:
    ValueError: only one class in ``positive``.
  """
  from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
  positive = np.asarray(positive, bool)
  if positive.all() or not positive.any():
    raise ValueError("ROC AUC needs both normal and anomalous examples")
  return float(roc_auc_score(positive, np.asarray(scores, np.float64)))


def _probe_accuracy(classifier, train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                    test_labels: np.ndarray) -> float:
  """Fits scikit-learn's ``classifier`` on standardised train features (the train split's mean
  and std) and returns its test accuracy; raises ValueError naming a bad input."""
  from sklearn.pipeline import make_pipeline  # pylint: disable=import-outside-toplevel
  from sklearn.preprocessing import StandardScaler  # pylint: disable=import-outside-toplevel
  if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
    raise ValueError("features and labels must have the same length")
  if len(np.unique(train_labels)) < 2:
    raise ValueError("a probe needs at least two classes in train")
  unseen = np.setdiff1d(test_labels, train_labels)
  if len(unseen):
    raise ValueError(f"test labels {unseen[:5].tolist()} never occur in train: a classifier cannot predict them")
  probe = make_pipeline(StandardScaler(), classifier)
  probe.fit(np.asarray(train_features, np.float64), train_labels)
  return float(probe.score(np.asarray(test_features, np.float64), test_labels))


def linear_probe_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                          test_labels: np.ndarray, seed: int = 0) -> float:
  """Test accuracy of a multinomial logistic regression fitted on standardised train features.

  ML-VAE's disentanglement measure (Bouchacourt et al. 2018, sec. 5): a classifier reading
  the group label (the digit) from the content latent should score high, from the style latent near chance. scikit-learn's ``LogisticRegression``
  (lbfgs, L2, C = 1), features standardised with the train split's mean and std.

  Args:
    train_features, test_features: f[n, d] latents (posterior means).
    train_labels, test_labels: int[n] group labels; the test labels must occur in train.

  Returns:
    A float in [0, 1].

  Raises:
    ValueError: mismatched lengths, fewer than two train classes, or test labels unseen in train.
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  return _probe_accuracy(LogisticRegression(max_iter=2000, random_state=seed), train_features, train_labels,
                         test_features, test_labels)


def mlp_probe_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                       test_labels: np.ndarray, seed: int = 0, hidden: tuple[int, ...] = (256, 256)) -> float:
  """Test accuracy of a multi-layer perceptron fitted on standardised train features.

  The classifier of the public ML-VAE port's evaluation (z -> 256
  -> 256 -> classes; ours is scikit-learn's ``MLPClassifier``, ReLU, Adam, early stopping on
  10% of the train features, in place of its BatchNorm and leaky ReLU). Unlike the linear probe
  it also reads a label that is present in a latent but not linearly.

  Args:
    train_features, test_features: f[n, d] latents (the port feeds posterior samples).
    train_labels, test_labels: int[n] labels; the test labels must occur in train.
    seed: the network's initialisation and the early-stopping split.
    hidden: widths of the hidden layers.

  Returns:
    A float in [0, 1].

  Raises:
    ValueError: mismatched lengths, fewer than two train classes, or test labels unseen in train.
  """
  from sklearn.neural_network import MLPClassifier  # pylint: disable=import-outside-toplevel
  return _probe_accuracy(MLPClassifier(tuple(hidden), early_stopping=True, max_iter=200, random_state=seed),
                         train_features, train_labels, test_features, test_labels)


def nearest_prototype_accuracy(queries: np.ndarray, query_labels: np.ndarray, prototypes: np.ndarray,
                               prototype_labels: np.ndarray) -> float:
  """Fraction of queries whose nearest prototype (Euclidean) has the query's label.

  Identity matching on unseen groups: a prototype per held-out group (ML-VAE: its content
  accumulated over a few gallery images), each query image matched to the closest one; chance
  is 1 / number of prototypes. Ties go to the first prototype.

  Args:
    queries: f[m, d]; query_labels: int[m].
    prototypes: f[p, d]; prototype_labels: int[p].

  Returns:
    A float in [0, 1].

  Raises:
    ValueError: no queries or prototypes, or mismatched dimensions.
  """
  q, p = np.asarray(queries, np.float64), np.asarray(prototypes, np.float64)
  if q.ndim != 2 or p.ndim != 2 or not len(q) or not len(p) or q.shape[1] != p.shape[1]:
    raise ValueError(f"expected queries [m, d] and prototypes [p, d] with m, p >= 1, got {q.shape} and {p.shape}")
  distances = np.sum(q ** 2, 1)[:, None] - 2.0 * q @ p.T + np.sum(p ** 2, 1)[None]
  return float(np.mean(np.asarray(prototype_labels)[np.argmin(distances, 1)] == np.asarray(query_labels)))
