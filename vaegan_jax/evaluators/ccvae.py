"""Evaluation of CCVAE (Joy et al. 2021, sec. 5): the accuracy of q(y|x), interventions on each
label's block of z_c scored by an independent classifier, characteristic swaps, latent walks
and conditional generation."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vaegan_jax import domain_classifier, images
from vaegan_jax.data import supervision
from vaegan_jax.evaluators.context import EvalContext, batched
from vaegan_jax.evaluators.figures import save_figure, save_reconstructions, save_samples
from vaegan_jax.evaluators.quality import mean_terms
from vaegan_jax.methods import ccvae

WALK_STEPS = 7              # points of a single-label latent walk (pairs: 5 x 5)


def _label_predictions(ctx: EvalContext, images_: np.ndarray, labels: Sequence[str]) -> np.ndarray:
  """bool[n, L]: the domain classifier's verdict on each CCVAE label of u8 or f32 images:
  attribute probability > 0.5 (CelebA), or predicted class == the label's class (digits)."""
  probs, _ = domain_classifier.predict(ctx.classifier, images_, ctx.config.eval.batch_size)
  if ctx.classifier.kind == "multilabel":
    return probs[:, [list(ctx.classifier.output_names).index(n) for n in labels]] > 0.5
  return probs.argmax(-1)[:, None] == np.asarray([int(n) for n in labels])[None]


def evaluate(ctx: EvalContext) -> dict:
  """Metrics and figures of a CCVAE checkpoint (Joy et al. 2021, sec. 5).

  * ``accuracy/<label>`` and ``accuracy/mean``: test accuracy of q(y|x) (the classifier on the
    posterior mean of z_c, threshold 1/2) per label and averaged; ``accuracy/majority_mean``:
    always predicting each label's majority value in the train split; ``accuracy/all_labels``:
    every label of the image right; for one-hot labels (digits) ``accuracy/class``: the most
    probable label is the true class.
  * ``loss/elbo``, ``loss/llike``, ``loss/kl``: the unsupervised objective on the test split
    (nats per image; no labels used).
  * Interventions, on the first ``eval.intervention_images`` test images: for each label, z_c's block set to the
    conditional prior's location for y = 1 and for y = 0 (for one-hot labels such as digits,
    y_i = 1 also sets every other block to its y = 0 location), decoded, and scored by the
    independently trained domain classifier (``classifier_for``; CelebA: its attribute,
    digits: its predicted class). ``intervention/<label>/to_1``, ``to_0``: how often it
    agrees with the value set; ``intervention/agreement``: the mean over labels and values;
    ``intervention/flip_rate``: among (image, label, value) whose test image the classifier
    judged otherwise, how often the intervention flipped its verdict;
    ``intervention/flip_rate_from_reconstruction``: the same among the cases where the
    classifier judged Dec(mu) otherwise (the intervention against the decoder's own output,
    its blur held equal); ``classifier/<label>/recall_1``, ``recall_0``: how often the
    classifier judges real test images whose true label is that value so, and
    ``intervention/flip_rate_ceiling``: the flip rate a perfect intervention (a real image with
    the value set) would score, each flip-rate case counted at that recall (cases of a value no
    test image has are left out): the most this classifier can show;
    ``intervention/reconstruction_agreement``: how often Dec(mu) keeps
    the verdict on the test image, and ``reconstruction/<label>/keeps_1``, ``keeps_0``: the
    same per label among the images judged 1 (or 0), the decoder's fidelity to each value,
    which bounds what an intervention toward it can show the classifier;
    ``intervention/<label>/own_q_to_1``, ``own_q_to_0``: the CCVAE's own q(y_i = value | z_c)
    at the location set (its own verdict on the intervention), ``intervention/own_agreement``:
    the share of the 2L (label, value) pairs where that verdict is the value set.
  * Characteristic swaps of image pairs (z_c exchanged, z_\\c kept), scored the same way, on the
    labels where the two images' verdicts differ: ``swap/characteristics_follow_source`` (the
    swap takes the verdict of the image its z_c came from) and ``swap/keeps_own`` (it keeps its own).

  Figures: ``latent_walk.png`` (a row per label: the test image, then its block walked from
  beyond p(z_c|y=0) to beyond p(z_c|y=1), ``ccvae.walk_range``), ``latent_walk_<a>_<b>.png``
  for each ``ccvae.walk_pairs`` (5 x 5: label a down, label b across),
  ``conditional_generation.png`` (a row per test image: the image, then samples of z_c ~
  p(z_c|y) and z_\\c ~ N(0, I) for its true labels y), ``characteristic_swaps.png`` (a row per
  pair: a, b, Dec(mu_a), Dec(mu_b), a with b's characteristics, b with a's), ``samples.png``
  and ``reconstructions.png``. The supervised-only baseline (``ccvae.objective =
  "classifier"``) has no generative model: it reports the accuracies only.
  """
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x, names = c.eval.batch_size, ctx.test["image"], list(c.ccvae.labels)
  attribute_names = ctx.run.info.attribute_names
  classes = ctx.run.info.class_names
  y_test = supervision.label_matrix(ctx.test, names, attribute_names, c.data.name, classes) > 0.5
  y_train = supervision.label_matrix(ctx.train, names, attribute_names, c.data.name, classes) > 0.5
  probs = batched(jax.jit(lambda im: ccvae.classify(models, c, state, im)), x, bs)
  accuracy = np.mean((probs > 0.5) == y_test, axis=0)
  out = {f"accuracy/{n}": float(a) for n, a in zip(names, accuracy)}
  out["accuracy/mean"] = float(accuracy.mean())
  out["accuracy/all_labels"] = float(np.mean(np.all((probs > 0.5) == y_test, axis=1)))
  if ctx.classifier.kind == "categorical" and y_test.sum(1).max() == 1:   # one-hot labels: the class itself
    out["accuracy/class"] = float(np.mean(probs.argmax(1) == y_test.argmax(1)))
  out["accuracy/majority_mean"] = float(np.mean((y_train.mean(0) > 0.5)[None] == y_test))
  out["supervision_rate"] = float(c.ccvae.supervision_rate)
  out["labelled_examples"] = float(supervision.labelled_count(len(ctx.train["image"]), c.ccvae.supervision_rate))
  ctx.progress.update()
  if c.ccvae.objective == "classifier":
    ctx.progress.update(3)
    return out
  out.update({f"loss/{k}": v for k, v in mean_terms(ctx, x, bs).items()})
  ctx.progress.update()

  encode = jax.jit(lambda im: ccvae.encode(models, c, state, im)[0])
  mu = batched(encode, x[:min(c.eval.intervention_images, len(x))], bs)
  out.update(_own_verdicts(ctx, names))
  verdict, metrics = _interventions(ctx, mu, names, y_test)
  out.update(metrics)
  out.update(_swaps(ctx, mu, verdict, names))
  ctx.progress.update()

  _figures(ctx, mu, names, y_test)
  ctx.progress.update()
  return out


def _decoder(ctx: EvalContext):
  return jax.jit(lambda z: ccvae.decode(ctx.run.models, ctx.state, z))


def _own_verdicts(ctx: EvalContext, names: Sequence[str]) -> dict:
  """The model's own verdict on its interventions: q(y_i | block i at p(z_c|y_i)'s location)."""
  prior = ccvae.prior_parameters(ctx.state)
  own = {value: np.asarray(ccvae.characteristic_probs(ctx.run.models, ctx.state, prior[key].reshape(1, -1)))[0]
         for value, key in ((1, "loc_true"), (0, "loc_false"))}
  out = {}
  for i, name in enumerate(names):
    out[f"intervention/{name}/own_q_to_1"], out[f"intervention/{name}/own_q_to_0"] = float(own[1][i]), float(1 - own[0][i])
  out["intervention/own_agreement"] = float(np.mean(np.concatenate([own[1] > 0.5, own[0] < 0.5])))
  return out


def _interventions(ctx: EvalContext, mu: np.ndarray, names: Sequence[str],
                   y_test: np.ndarray) -> tuple[np.ndarray, dict]:
  """(the classifier's verdict bool[n, L] on the n intervened test images, ``intervention/*``,
  ``reconstruction/*`` and ``classifier/*`` metrics): each label's block set to p(z_c|y)'s locations."""
  c, x, bs = ctx.config, ctx.test["image"], ctx.config.eval.batch_size
  cd, block, n = ccvae.characteristic_dim(c), c.ccvae.block_dim, len(mu)
  decode, prior = _decoder(ctx), ccvae.prior_parameters(ctx.state)
  test_verdict = _label_predictions(ctx, x, names)                       # bool[test, L]
  verdict = test_verdict[:n]                                             # bool[n, L]
  recon_verdict = _label_predictions(ctx, batched(decode, mu, bs), names)  # bool[n, L]: the verdict on Dec(mu)
  out = {"intervention/reconstruction_agreement": float(np.mean(recon_verdict == verdict))}
  agree, flips, candidates, flips_dec, candidates_dec, ceiling, ceiling_cases = [], 0, 0, 0, 0, 0.0, 0
  exclusive = ctx.classifier.kind == "categorical"   # one-hot labels (digits): turning one on turns the rest off
  for i, name in enumerate(names):
    for value in (1, 0):
      judged = verdict[:, i] == bool(value)
      if judged.any():
        out[f"reconstruction/{name}/keeps_{value}"] = float(np.mean(recon_verdict[judged, i] == bool(value)))
      z = mu.copy()
      if value and exclusive:
        z[:, :cd] = prior["loc_false"].reshape(-1)
      z[:, i * block:(i + 1) * block] = prior["loc_true" if value else "loc_false"][i]
      now = _label_predictions(ctx, batched(decode, z, bs), names)[:, i]
      out[f"intervention/{name}/to_{value}"] = float(np.mean(now == bool(value)))
      agree.append(out[f"intervention/{name}/to_{value}"])
      flips += int(np.sum(now[~judged] == bool(value)))
      candidates += int(np.sum(~judged))
      truly = y_test[:, i] == bool(value)   # the classifier's recall of this value on real test images:
      if truly.any():                       # how often it would agree with a perfect intervention
        recall = float(np.mean(test_verdict[truly, i] == bool(value)))
        out[f"classifier/{name}/recall_{value}"] = recall
        ceiling += recall * np.sum(~judged)
        ceiling_cases += int(np.sum(~judged))
      other_dec = recon_verdict[:, i] != bool(value)
      flips_dec += int(np.sum(now[other_dec] == bool(value)))
      candidates_dec += int(np.sum(other_dec))
  out["intervention/agreement"] = float(np.mean(agree))
  out["intervention/flip_rate"] = flips / max(candidates, 1)
  out["intervention/flip_rate_from_reconstruction"] = flips_dec / max(candidates_dec, 1)
  out["intervention/flip_rate_ceiling"] = float(ceiling / max(ceiling_cases, 1))
  return verdict, out


def _swapped_latents(mu: np.ndarray, cd: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(a, b, a with b's z_c, b with a's z_c): the first and second halves of ``mu`` paired."""
  half = len(mu) // 2
  a, b = mu[:half], mu[half:2 * half]
  return a, b, np.concatenate([b[:, :cd], a[:, cd:]], 1), np.concatenate([a[:, :cd], b[:, cd:]], 1)


def _swaps(ctx: EvalContext, mu: np.ndarray, verdict: np.ndarray, names: Sequence[str]) -> dict:
  """``swap/*``: characteristic swaps of image pairs (z_c exchanged, z_\\c kept), scored by the classifier."""
  half = len(mu) // 2
  _, _, swap_ab, swap_ba = _swapped_latents(mu, ccvae.characteristic_dim(ctx.config))
  swapped = _label_predictions(ctx, batched(_decoder(ctx), np.concatenate([swap_ab, swap_ba]),
                                            ctx.config.eval.batch_size), names)
  source = np.concatenate([verdict[half:2 * half], verdict[:half]])     # where each swap's z_c came from
  own = np.concatenate([verdict[:half], verdict[half:2 * half]])
  differ = source != own
  return {"swap/characteristics_follow_source": float(np.mean(swapped[differ] == source[differ])),
          "swap/keeps_own": float(np.mean(swapped[differ] == own[differ]))}


def _figures(ctx: EvalContext, mu: np.ndarray, names: Sequence[str], y_test: np.ndarray) -> None:
  """Samples, reconstructions, latent walks, conditional generation and characteristic swaps."""
  c, state, models, x, bs = ctx.config, ctx.state, ctx.run.models, ctx.test["image"], ctx.config.eval.batch_size
  block, decode, prior = c.ccvae.block_dim, _decoder(ctx), ccvae.prior_parameters(state)
  rows = c.train.num_image_rows
  save_samples(ctx, np.asarray(ccvae.sample(models, state, ccvae.prior_sample(c, jax.random.key(c.seed + 2),
                                                                               rows * rows))))
  save_reconstructions(ctx, x, batched(decode, mu, bs))
  source_z = mu[0]
  walk = []
  for i in range(len(names)):
    z = np.repeat(source_z[None], WALK_STEPS, 0)
    z[:, i * block:(i + 1) * block] = ccvae.walk_range(prior, i, WALK_STEPS)
    walk.append(np.concatenate([x[:1], images.to_uint8(decode(z))]))
  save_figure(ctx, "latent_walk", images.make_grid(np.concatenate(walk), WALK_STEPS + 1))
  for first, second in c.ccvae.walk_pairs:
    i, j = names.index(first), names.index(second)
    z = np.repeat(source_z[None], 25, 0)
    rows_of, cols_of = np.divmod(np.arange(25), 5)
    z[:, i * block:(i + 1) * block] = ccvae.walk_range(prior, i, 5)[rows_of]
    z[:, j * block:(j + 1) * block] = ccvae.walk_range(prior, j, 5)[cols_of]
    save_figure(ctx, f"latent_walk_{first}_{second}", images.make_grid(images.to_uint8(decode(z)), 5))
  shown, per_row = 8, 7
  noise = jax.random.normal(jax.random.key(c.seed + 3), (shown * per_row, c.model.latent_dim))
  z = ccvae.conditional_latents(models, state, jnp.asarray(np.repeat(y_test[:shown], per_row, 0), jnp.float32), noise)
  generated = images.to_uint8(decode(z)).reshape(shown, per_row, *x.shape[1:])
  save_figure(ctx, "conditional_generation",
              images.make_grid(np.concatenate([x[:shown, None], generated], 1).reshape(-1, *x.shape[1:]), per_row + 1))
  half = len(mu) // 2
  pairs = min(shown, half)
  a, b, swap_ab, swap_ba = _swapped_latents(mu, ccvae.characteristic_dim(c))
  decoded = images.to_uint8(batched(decode, np.concatenate(
      [a[:pairs], b[:pairs], swap_ab[:pairs], swap_ba[:pairs]]), bs)).reshape(4, pairs, *x.shape[1:])
  panel = np.stack([x[:pairs], x[half:half + pairs], decoded[0], decoded[1], decoded[2], decoded[3]], 1)
  save_figure(ctx, "characteristic_swaps", images.make_grid(panel.reshape(-1, *x.shape[1:]), 6))
