"""Evaluation of the VAE/GAN family (vaegan, vae, gan): Larsen et al. 2016's measurements.

On the test split: reconstruction (pixel MSE, the Dis_l feature error with a discriminator, KL
and the ELBO terms); sample quality (Fréchet and kernel distances of prior samples and of
reconstructions to the test images in the domain classifier's embedding; sharpness); on
labelled data (MNIST) how often the classifier's verdict on a reconstruction is the input's
label; on attribute-labelled data (the CelebA subset) attribute agreement of reconstructions
and attribute arithmetic (sec. 5.2).
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from vaegan_jax import domain_classifier, images, metrics
from vaegan_jax.evaluators.context import EvalContext, batched
from vaegan_jax.evaluators.figures import interpolation_grid, save_figure, save_reconstructions, save_samples
from vaegan_jax.evaluators.quality import attribute_agreement, loss_terms, sample_quality
from vaegan_jax.methods import vaegan


def evaluate(ctx: EvalContext) -> dict:
  """Metrics and figures of a VAE/GAN, VAE or GAN checkpoint (see the module docstring).

  Figures written to ``ctx.outdir``: ``reconstructions.png`` (rows of inputs above rows of
  Dec(mu)), ``samples.png`` (Dec(z_p), z_p ~ N(0, I)), ``interpolation.png`` (each row: input
  A, Dec along the line from z_A to z_B, input B; prior draws for the GAN) and, on data with
  attributes, ``attribute_arithmetic.png`` (per attribute four test images; columns: input,
  then one column per strength).
  """
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x = c.eval.batch_size, ctx.test["image"]
  has_encoder = "encoder" in state.params
  out = loss_terms(ctx)
  ctx.progress.update()

  decode = jax.jit(lambda z: vaegan.sample(models, state, z))
  encode = jax.jit(lambda im: vaegan.encode(models, state, im)[0])
  test_probs, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  z_prior = np.asarray(jax.random.normal(jax.random.key(c.seed + 1), (len(x), c.model.latent_dim)))
  samples = batched(decode, z_prior, bs)
  out.update(sample_quality(ctx, "samples", samples, test_embedding))
  save_samples(ctx, samples)
  ctx.progress.update()

  if has_encoder:
    z_test = batched(encode, x, bs)  # posterior means, reused below
    recon = batched(decode, z_test, bs)
    out.update(sample_quality(ctx, "reconstructions", recon, test_embedding))
    save_reconstructions(ctx, x, recon)
    recon_probs, _ = domain_classifier.predict(ctx.classifier, recon, bs)
    if "attributes" in ctx.test:
      out.update(attribute_agreement(ctx, "test", test_probs))
      out.update(attribute_agreement(ctx, "reconstructions", recon_probs))
    elif "label" in ctx.test:
      # Does Dec(mu(x)) keep x's class? The classifier's verdict on reconstructions against the
      # true label, beside its accuracy on the test images themselves (its ceiling).
      out["test/label_accuracy"] = float(np.mean(np.argmax(test_probs, 1) == ctx.test["label"]))
      out["reconstructions/label_accuracy"] = float(np.mean(np.argmax(recon_probs, 1) == ctx.test["label"]))
  ctx.progress.update()

  pairs = min(c.eval.num_pairs, len(x) // 2)
  if has_encoder:
    half = len(x) // 2
    grid = interpolation_grid(ctx, z_test[:pairs], z_test[half:half + pairs], decode,
                              (x[:pairs], x[half:half + pairs]))
  else:
    grid = interpolation_grid(ctx, z_prior[:pairs], z_prior[pairs:2 * pairs], decode, None)
  save_figure(ctx, "interpolation", grid)
  if has_encoder and "attributes" in ctx.test:
    out.update(attribute_arithmetic(ctx, encode, decode, z_test))
  ctx.progress.update()
  return out


def attribute_arithmetic(ctx: EvalContext, encode: Callable, decode: Callable, z_test: np.ndarray,
                         count: int = 64) -> dict:
  """Larsen et al. 2016, sec. 5.2: z + s * (mean z(a=1) - mean z(a=0)), scored by the attribute classifier.

  The vectors come from posterior means of the whole training split (``encode``); the edit is
  applied to the posterior means ``z_test`` of up to ``count`` test images that lack the
  attribute, for each ``config.eval.strengths``.

  Returns:
    ``arithmetic/<attribute>/prob_at_<s>``: mean classifier probability of the attribute after
    adding s times its vector (s = 0 is the unedited reconstruction); ``.../prob_of_input``:
    the same on the input images; ``.../raised_fraction``: fraction of images whose
    probability rose from s = 0 to the largest strength.

  Raises:
    ValueError: a configured attribute the dataset does not have.
  """
  names = list(ctx.run.info.attribute_names)
  unknown = [a for a in ctx.config.eval.attributes if a not in names]
  if unknown:
    raise ValueError(f"config.eval.attributes {unknown} are not attributes of {ctx.config.data.name}; "
                     f"choose from {names}")
  bs = ctx.config.eval.batch_size
  z_train = batched(encode, ctx.train["image"], bs)
  vectors = metrics.attribute_vectors(z_train, ctx.train["attributes"])
  strengths = tuple(ctx.config.eval.strengths)
  out, rows = {}, []
  for attribute in ctx.config.eval.attributes:
    a = names.index(attribute)
    chosen = np.flatnonzero(~ctx.test["attributes"][:, a].astype(bool))[:count]
    if len(chosen) == 0 or not np.all(np.isfinite(vectors[a])):
      continue
    x = ctx.test["image"][chosen]
    probs_in, _ = domain_classifier.predict(ctx.classifier, x, bs)
    out[f"arithmetic/{attribute}/prob_of_input"] = float(probs_in[:, a].mean())
    edited = [batched(decode, z_test[chosen] + s * vectors[a][None].astype(np.float32), bs) for s in strengths]
    probs = [domain_classifier.predict(ctx.classifier, e, bs)[0][:, a] for e in edited]
    for s, p in zip(strengths, probs):
      out[f"arithmetic/{attribute}/prob_at_{s:g}"] = float(p.mean())
    out[f"arithmetic/{attribute}/raised_fraction"] = float(np.mean(probs[-1] > probs[0]))
    for i in range(min(4, len(chosen))):
      rows.append([x[i]] + [images.to_uint8(e[i:i + 1])[0] for e in edited])
  if rows:
    save_figure(ctx, "attribute_arithmetic", images.make_grid(np.stack([im for row in rows for im in row]), len(rows[0])))
  return out
