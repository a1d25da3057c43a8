"""Scores every evaluator shares: sample quality in the domain classifier's embedding, the
method's own loss terms on the test split, and attribute agreement on attribute-labelled data."""

from __future__ import annotations

import functools

import jax
import numpy as np

from vaegan_jax import domain_classifier, metrics
from vaegan_jax.evaluators.context import EvalContext


def sample_quality(ctx: EvalContext, name: str, generated: np.ndarray, test_embedding: np.ndarray) -> dict:
  """Fréchet and kernel distance to the test images and sharpness ratio of ``generated``.

  Args:
    ctx: the evaluation context (its classifier embeds ``generated``).
    name: key prefix, "samples" or "reconstructions".
    generated: f32[n, h, w, c] images in [-1, 1].
    test_embedding: f32[m, features], the classifier's embedding of the test images.

  Returns:
    ``<name>/frechet_distance``, ``<name>/kernel_distance`` (``metrics``), ``<name>/sharpness_ratio``
    (Laplacian variance over the test images'; 1.0 = as sharp as real data).
  """
  _, embedding = domain_classifier.predict(ctx.classifier, generated, ctx.config.eval.batch_size)
  return {f"{name}/frechet_distance": metrics.frechet_distance(test_embedding, embedding),
          f"{name}/kernel_distance": metrics.kernel_distance(test_embedding, embedding),
          f"{name}/sharpness_ratio": metrics.sharpness_ratio(generated, ctx.test["image"])}


def mean_terms(ctx: EvalContext, inputs: np.ndarray, per_call: int) -> dict[str, float]:
  """Means over ``inputs`` (along the first axis: images, or ML-VAE's groups) of the method's
  ``eval_step`` terms, ``per_call`` rows per device call, each call with its own key."""
  step = jax.jit(functools.partial(ctx.run.method.eval_step, ctx.run.models, ctx.config))
  key = jax.random.key(ctx.config.seed)
  sums, count = {}, 0
  for i in range(0, len(inputs), per_call):
    chunk = inputs[i:i + per_call]
    for k, v in jax.device_get(step(ctx.state, chunk, jax.random.fold_in(key, i))).items():
      sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
    count += len(chunk)
  return {k: v / count for k, v in sums.items()}


def loss_terms(ctx: EvalContext) -> dict:
  """Test-split means of the method's ``eval_step`` terms (``loss/<term>``), plus the ELBOs they make."""
  out = {f"loss/{k}": v for k, v in mean_terms(ctx, ctx.test["image"], ctx.config.eval.batch_size).items()}
  if "loss/kl" in out:
    # The model's own bound (llike on Dis_l features for VAE/GAN, on pixels for the VAE), and the
    # bound of the same decoder read as a Gaussian pixel model (comparable across models).
    out["loss/elbo"] = -(out["loss/kl"] + out["loss/llike"])
    if "loss/pixel_nll" in out:
      out["loss/elbo_pixel"] = -(out["loss/kl"] + out["loss/pixel_nll"])
  return out


def attribute_agreement(ctx: EvalContext, prefix: str, probs: np.ndarray) -> dict:
  """Accuracy and cosine similarity (±1 coding, as the paper's regressor table) of attribute
  probabilities ``probs`` (f32[test, attributes] in [0, 1]) against the test split's attributes."""
  truth = ctx.test["attributes"].astype(bool)
  a, b = 2.0 * probs - 1.0, 2.0 * truth - 1.0
  cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
  return {f"{prefix}/attribute_accuracy": float(np.mean((probs > 0.5) == truth)),
          f"{prefix}/attribute_cosine": float(np.mean(cosine))}
