"""Evaluation of TVAE (Ishfaq et al. 2018) and its plain-VAE baseline: triplet accuracy of the
posterior means on fixed test triplets, the ELBO terms, sample quality and a latent PCA figure."""

from __future__ import annotations

import os

import jax
import numpy as np

from vaegan_jax import domain_classifier, metrics
from vaegan_jax.data import triplets
from vaegan_jax.evaluators.context import EvalContext, batched
from vaegan_jax.evaluators.figures import latent_figure, save_reconstructions, save_samples
from vaegan_jax.evaluators.quality import loss_terms, sample_quality


def evaluate(ctx: EvalContext) -> dict:
  """Metrics and figures of a TVAE checkpoint (or of its plain-VAE baseline, triplet_weight 0).

  Metrics: the ELBO terms of ``tvae.eval_step`` on the whole test split, ``triplet/accuracy``
  over ``eval.triplets_per_class`` fixed, seeded test triplets per anchor class
  (``data.triplets.eval_triplets``, seed ``config.seed``) on the posterior means, and the
  sample and reconstruction quality scores of every method. Figures: ``reconstructions.png``,
  ``samples.png`` and ``latent_pca.png`` (2-D PCA of the test means, coloured by class).
  """
  c, state, models, method = ctx.config, ctx.state, ctx.run.models, ctx.run.method
  bs, x, labels = c.eval.batch_size, ctx.test["image"], ctx.test["label"]
  out = loss_terms(ctx)
  ctx.progress.update()

  encode = jax.jit(lambda im: method.encode(models, state, im)[0])
  decode = jax.jit(lambda z: method.sample(models, state, z))
  mu = batched(encode, x, bs)
  chosen = triplets.eval_triplets(labels, c.eval.triplets_per_class, c.seed)
  out["triplet/accuracy"] = metrics.triplet_accuracy(mu, chosen)
  out["triplet/count"] = float(len(chosen))
  ctx.progress.update()

  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  z_prior = np.asarray(jax.random.normal(jax.random.key(c.seed + 1), (len(x), c.model.latent_dim)))
  samples = batched(decode, z_prior, bs)
  out.update(sample_quality(ctx, "samples", samples, test_embedding))
  save_samples(ctx, samples)
  recon = batched(decode, mu, bs)
  out.update(sample_quality(ctx, "reconstructions", recon, test_embedding))
  save_reconstructions(ctx, x, recon)
  ctx.progress.update()

  name = "TVAE" if c.loss.triplet_weight > 0 else "VAE (triplet_weight 0)"
  latent_figure(mu, labels, os.path.join(ctx.outdir, "latent_pca.png"),
                f"{name}, {c.data.name} test means: triplet acc. {out['triplet/accuracy']:.2%}")
  ctx.progress.update()
  return out
