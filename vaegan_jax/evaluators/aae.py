"""Evaluation of adversarial autoencoders (aae, semi_aae; Makhzani et al. 2015): Parzen-window
log-likelihood, semi-supervised test error, one-class anomaly detection, sample quality."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from vaegan_jax import data, domain_classifier, images, metrics
from vaegan_jax.evaluators.context import EvalContext, batched
from vaegan_jax.evaluators.figures import latent_figure, save_figure, save_reconstructions, save_samples
from vaegan_jax.evaluators.quality import loss_terms, sample_quality
from vaegan_jax.methods import aae


def evaluate(ctx: EvalContext) -> dict:
  """Metrics and figures of an adversarial autoencoder checkpoint (aae or semi_aae).

  Metrics (Makhzani et al. 2015's protocols):

  * ``loss/pixel_bce``, ``loss/pixel_mse``: reconstruction of the test split;
  * ``parzen/log_likelihood`` (+- ``parzen/log_likelihood_sem``): Parzen-window log-likelihood
    (nats) of the test split from ``eval.parzen_samples`` decoded prior draws, pixels in [0, 1],
    the bandwidth (``parzen/bandwidth``) chosen among ``eval.parzen_num_bandwidths`` log-spaced
    values on ``data.validation_split`` (skipped when that is ""); paper: 340 +- 2;
  * semi_aae: ``classification/test_error`` of argmax q(y|x) on the test split (paper, 100
    labels: 1.90% +- 0.10);
  * anomaly detection (``aae.normal_class >= 0``, trained on that class only): ROC AUC of
    the reconstruction error (Bernoulli NLL of Dec(Enc(x))) for telling the other classes of
    the test split from the normal one, and of a combined score, the sum of the
    reconstruction error and -log p(Enc(x)), each standardised on the normal training
    images (a code far from the prior is anomalous too);
  * the sample quality scores of every method (FD, KID, sharpness against the test split).

  Figures: ``samples.png``, ``reconstructions.png``, ``latent.png`` (test codes coloured by
  class: the 2-D code itself, else its PCA), and for a label-conditioned mixture or semi_aae
  ``samples_by_class.png`` (row k decodes prior draws of class k).
  """
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x, labels = c.eval.batch_size, ctx.test["image"], ctx.test.get("label")   # no labels: an image folder
  encode = jax.jit(lambda im: aae.encode(models, state, im))
  decode = jax.jit(lambda code: aae.sample(models, state, code))
  parts = [jax.device_get(encode(x[i:i + bs])) for i in range(0, len(x), bs)]
  codes = np.concatenate([p[0] for p in parts])            # [y | z] for semi_aae, z otherwise
  z = codes[:, aae.num_classes(c):]
  out = loss_terms(ctx)
  if aae.num_classes(c):
    y_logits = np.concatenate([p[1] for p in parts])
    out["classification/test_error"] = float(np.mean(np.argmax(y_logits, -1) != labels))
  ctx.progress.update()

  samples = batched(decode, np.asarray(aae.prior_sample(c, jax.random.key(c.seed + 2), c.eval.parzen_samples)), bs)
  out.update(_parzen(ctx, samples))
  ctx.progress.update()

  if c.aae.normal_class >= 0:
    out.update(_anomaly_detection(ctx, encode, z))
  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  out.update(sample_quality(ctx, "samples", samples, test_embedding))
  save_samples(ctx, samples)
  save_reconstructions(ctx, x, batched(decode, codes, bs))
  ctx.progress.update()

  _figures(ctx, decode, z)
  ctx.progress.update()
  return out


def _parzen(ctx: EvalContext, samples: np.ndarray) -> dict:
  """``parzen/*``: the Parzen-window log-likelihood of the test split under f32 ``samples`` in
  [-1, 1], bandwidth chosen on ``data.validation_split`` (nothing when that is "")."""
  c = ctx.config
  if not c.data.validation_split:
    return {}
  flat = lambda a: a.reshape(len(a), -1).astype(np.float32)  # noqa: E731
  validation = data.split_arrays(c, c.data.validation_split)["image"]
  bandwidths = np.logspace(np.log10(c.eval.parzen_min_bandwidth), np.log10(c.eval.parzen_max_bandwidth),
                           c.eval.parzen_num_bandwidths)
  parzen = metrics.parzen_evaluation(flat(validation) / 255.0, flat(ctx.test["image"]) / 255.0,
                                     (flat(samples) + 1.0) / 2.0, bandwidths)
  return {**{f"parzen/{k}": v for k, v in parzen.items()}, "parzen/num_samples": float(len(samples))}


def _standardise(score: np.ndarray, reference: np.ndarray) -> np.ndarray:
  return (score - reference.mean()) / max(float(reference.std()), 1e-12)


def _anomaly_detection(ctx: EvalContext, encode, z: np.ndarray) -> dict:
  """``anomaly/*``: ROC AUCs of the reconstruction error and of the combined score for telling the
  test split's other classes from ``aae.normal_class`` (z: f32[test, d], the test codes)."""
  c, state, models, bs = ctx.config, ctx.state, ctx.run.models, ctx.config.eval.batch_size
  x, labels = ctx.test["image"], ctx.test["label"]
  error = jax.jit(lambda im: aae.reconstruction_error(models, state, im))
  density = jax.jit(lambda v: aae.prior_log_density(c, v))
  normal_train = ctx.train["image"][ctx.train["label"] == c.aae.normal_class][:5000]
  z_train = batched(lambda im: encode(im)[0], normal_train, bs)
  reference = (batched(error, normal_train, bs), -batched(density, z_train, bs))
  scores = (batched(error, x, bs), -batched(density, z, bs))
  anomalous = labels != c.aae.normal_class
  combined = _standardise(scores[0], reference[0]) + _standardise(scores[1], reference[1])
  return {"anomaly/normal_class": float(c.aae.normal_class),
          "anomaly/roc_auc_reconstruction": metrics.roc_auc(scores[0], anomalous),
          "anomaly/roc_auc_combined": metrics.roc_auc(combined, anomalous)}


def _figures(ctx: EvalContext, decode, z: np.ndarray) -> None:
  """``samples_by_class.png`` (label-conditioned mixture or semi_aae) and ``latent.png``."""
  c = ctx.config
  by_class = aae.num_classes(c) or (c.aae.num_components if c.aae.condition_on_label else 0)
  if by_class:
    per_row = 10
    classes = jnp.repeat(jnp.arange(by_class), per_row)
    grid_codes = aae.prior_sample(c, jax.random.key(c.seed + 3), len(classes), labels=classes)
    save_figure(ctx, "samples_by_class", images.make_grid(images.to_uint8(np.asarray(decode(grid_codes))), per_row))
  what = {"aae": f"AAE, {c.aae.prior} prior" + (", label-conditioned" if c.aae.condition_on_label else ""),
          "semi_aae": f"semi-supervised AAE, {c.aae.num_labels} labels (style z)"}[c.method]
  latent_figure(z, ctx.test.get("label"), os.path.join(ctx.outdir, "latent.png"), f"{what}: {c.data.name} test codes")
