"""Evaluation of ML-VAE (Bouchacourt et al. 2018, sec. 5): grouped and single-image ELBOs, how
well content and style carry the group (probes, nearest-prototype matching), and style/content
swaps, on groups formed by ``mlvae.group_by`` (digit, identity)."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import numpy as np

from vaegan_jax import domain_classifier, images, metrics
from vaegan_jax.data import groups
from vaegan_jax.evaluators.context import EvalContext, batched
from vaegan_jax.evaluators.figures import latent_figure, save_figure, save_reconstructions, save_samples
from vaegan_jax.evaluators.quality import mean_terms, sample_quality
from vaegan_jax.methods import mlvae

MATCHING_GALLERY = (1, 2, 5, 10)   # gallery images accumulated into each group's prototype


@dataclasses.dataclass
class _Codes:
  """Posterior parameters of test images, each encoded alone (f32[test, style_dim or content_dim])."""
  style: np.ndarray
  style_logvar: np.ndarray
  content: np.ndarray
  content_logvar: np.ndarray

  def accumulate(self, idx: np.ndarray) -> np.ndarray:
    """The content posterior mean accumulated over each row of ``idx`` (i64[G, n]): f32[G, content_dim]."""
    return _posterior(self.content, self.content_logvar, idx)[0]


def _posterior(mu: np.ndarray, logvar: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The product of Gaussians over each row of ``idx`` (i64[G, n]): (mu, logvar) f32[G, d]."""
  return tuple(np.asarray(a) for a in mlvae.product_of_gaussians(mu[idx], logvar[idx], axis=1))


def _encoder(ctx: EvalContext) -> Callable[[np.ndarray], _Codes]:
  """u8 images -> their ``_Codes``, in batches of ``eval.batch_size``."""
  c, bs = ctx.config, ctx.config.eval.batch_size
  encode = jax.jit(lambda im: mlvae.encode(ctx.run.models, c, ctx.state, im))

  def codes(arrays: np.ndarray) -> _Codes:
    parts = [jax.device_get(encode(arrays[i:i + bs])) for i in range(0, len(arrays), bs)]
    return _Codes(*(np.concatenate([p[j][h] for p in parts]) for j in (0, 1) for h in (0, 1)))
  return codes


def evaluate(ctx: EvalContext) -> dict:
  """Metrics and figures of an ML-VAE checkpoint (Bouchacourt et al. 2018, sec. 5).

  Groups are formed by ``mlvae.group_by`` (digit, identity) on the test split.

  * ``loss/elbo_grouped`` (+ ``llike``, ``kl_style``, ``kl_content`` per group): the test ELBO,
    nats per image, of test groups of ``mlvae.group_size`` (``data.groups.eval_groups``),
    content accumulated over each group; ``loss/elbo_single``: the same images each alone
    (no accumulation). ``loss/pixel_mse``: reconstruction of single images.
  * ``probe/content_accuracy``, ``probe/style_accuracy``: a logistic regression
    (``metrics.linear_probe_accuracy``) fitted on the train split's single-image posterior
    means reads the group label of test images from their content mean, and from their style
    mean (content should be high, style near ``probe/chance``, the majority-class rate);
    ``probe/content_accuracy_grouped``: the same content classifier on the content accumulated
    over each test image's group. Only when the test groups occur in train (MNIST's digits).
  * ``probe/style_accuracy_sampled``, ``probe/content_accuracy_grouped_sampled``: the public
    port's protocol (its README's 42% and 99.7%): a two-layer MLP
    (``metrics.mlp_probe_accuracy``) reads the label from one posterior sample per image, style
    s ~ q(s|x) and content c ~ q(c_G|X_G) drawn once per group of ``group_size`` (train and test).
  * ``matching/content_accuracy_k{1,2,5,10}`` and ``matching/style_accuracy_k...``: per test
    group, a prototype from k gallery images (their accumulated content; the mean of their
    style means), and each of the group's other images (at most 100) matched to the nearest
    prototype (``metrics.nearest_prototype_accuracy``); ``matching/chance`` = 1 / groups,
    ``matching/unseen_groups`` = 1.0 when no test group occurs in train (CelebA identities).
  * ``swap/content_follows_column``, ``swap/style_follows_row``: every (row group, column
    group) pair of up to 24 test groups is decoded from the style of the row group's image and
    the content accumulated over the column group's gallery, then re-encoded: the fraction of
    swaps whose content is nearest to the column group's content (among the columns), and
    whose style is nearest to the row image's style (among the rows); ``swap/chance``.
  * the sample and reconstruction quality scores of every method.

  Figures: ``swap.png`` (row r, column c: Dec(style of the row image, content accumulated over
  the column image's group; the diagonal is the row's own group)), ``accumulation.png`` (per row a test group's 10 gallery images,
  then Dec(style of the first, content accumulated from 1, 2, 5, 10 of them)),
  ``samples.png``, ``reconstructions.png`` and, with at most 10 groups, ``latent_content.png`` and
  ``latent_style.png`` (PCA of the test means coloured by group).

  Raises:
    ValueError: the test split has fewer than two groups with ``group_size`` (and 11) images.
  """
  c, x, k = ctx.config, ctx.test["image"], ctx.config.mlvae.group_size
  test_values = groups.group_values(ctx.test, c.mlvae.group_by, c.data.name)
  train_values = groups.group_values(ctx.train, c.mlvae.group_by, c.data.name)
  test_groups = groups.eval_groups(test_values, k, c.seed)
  if len(test_groups) < 2:
    raise ValueError(f"{c.data.name}:{c.data.eval_split} has fewer than two groups of {k}: evaluate on a larger "
                     "split (--config.data.eval_split at training) or a smaller mlvae.group_size")
  grouped = mean_terms(ctx, x[test_groups], max(1, c.eval.batch_size // k))   # u8[G, K, h, w, c]
  single = mean_terms(ctx, x[test_groups.reshape(-1, 1)], c.eval.batch_size)  # the same images, groups of one
  out = {f"loss/{name}_grouped": v for name, v in grouped.items()}
  out.update({f"loss/{name}_single": v for name, v in single.items()})
  ctx.progress.update()

  encode = _encoder(ctx)
  codes = encode(x)
  if np.isin(test_values, train_values).all():
    out.update(_probes(ctx, encode, codes, test_values, train_values, test_groups))
  ctx.progress.update()

  gallery, matching = _matching(ctx, codes, test_values)
  out.update(matching)
  out["matching/unseen_groups"] = float(not np.isin(test_values, train_values).any())
  ctx.progress.update()

  out.update(_quality(ctx, codes))
  out.update(_swaps(ctx, encode, codes, gallery))
  if len(np.unique(test_values)) <= 10:
    for name, latents in (("content", codes.content), ("style", codes.style)):
      latent_figure(latents, test_values, os.path.join(ctx.outdir, f"latent_{name}.png"),
                    f"ML-VAE {name} means, {c.data.name} test, by {c.mlvae.group_by}")
  ctx.progress.update()
  return out


def _probes(ctx: EvalContext, encode: Callable[[np.ndarray], _Codes], codes: _Codes, test_values: np.ndarray,
            train_values: np.ndarray, test_groups: np.ndarray) -> dict:
  """``probe/*``: classifiers fitted on train codes read the group label of test codes (groups that occur in train)."""
  c, k = ctx.config, ctx.config.mlvae.group_size
  rng = np.random.default_rng(c.seed)
  chosen = np.sort(rng.choice(len(train_values), min(len(train_values), 20_000), replace=False))
  train = encode(ctx.train["image"][chosen])
  labels = train_values[chosen]
  member_content = np.empty_like(codes.content)
  member_content[test_groups.reshape(-1)] = np.repeat(codes.accumulate(test_groups), k, axis=0)
  in_group = test_groups.reshape(-1)
  out = {"probe/content_accuracy": metrics.linear_probe_accuracy(train.content, labels, codes.content, test_values,
                                                                 c.seed),
         "probe/style_accuracy": metrics.linear_probe_accuracy(train.style, labels, codes.style, test_values, c.seed),
         "probe/content_accuracy_grouped": metrics.linear_probe_accuracy(
             train.content, labels, member_content[in_group], test_values[in_group], c.seed),
         "probe/chance": float(np.max(np.unique(test_values, return_counts=True)[1]) / len(test_values))}
  # The public port's protocol: an MLP reads the label from one posterior sample per image, the
  # content drawn once per group from the posterior accumulated over it (train groups of k too).
  draw = lambda mu, logvar: mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)  # noqa: E731
  train_groups = groups.eval_groups(labels, k, c.seed)          # i64[G, k] into the chosen images
  group_draw = lambda mu, logvar, idx: np.repeat(draw(*_posterior(mu, logvar, idx)), k, axis=0)  # noqa: E731
  out["probe/style_accuracy_sampled"] = metrics.mlp_probe_accuracy(
      draw(train.style, train.style_logvar), labels, draw(codes.style, codes.style_logvar), test_values, c.seed)
  out["probe/content_accuracy_grouped_sampled"] = metrics.mlp_probe_accuracy(
      group_draw(train.content, train.content_logvar, train_groups), labels[train_groups.reshape(-1)],
      group_draw(codes.content, codes.content_logvar, test_groups), test_values[in_group], c.seed)
  return out


def _matching(ctx: EvalContext, codes: _Codes, test_values: np.ndarray) -> tuple[np.ndarray, dict]:
  """(gallery i64[groups, 10] of test images, ``matching/*``): queries matched to k-image prototypes.

  Raises:
    ValueError: fewer than two test groups have more than ``max(MATCHING_GALLERY)`` images.
  """
  c = ctx.config
  rng = np.random.default_rng(c.seed + 1)
  gallery_size = max(MATCHING_GALLERY)
  members = [rng.permutation(np.flatnonzero(test_values == v)) for v in np.unique(test_values)]
  members = [m for m in members if len(m) > gallery_size]
  if len(members) < 2:
    raise ValueError(f"{c.data.name}:{c.data.eval_split} has fewer than two groups of more than {gallery_size} images "
                     "to match queries against")
  gallery = np.stack([m[:gallery_size] for m in members])
  queries = np.concatenate([m[gallery_size:gallery_size + 100] for m in members])
  query_labels = test_values[queries]
  out = {}
  for n in MATCHING_GALLERY:
    out[f"matching/content_accuracy_k{n}"] = metrics.nearest_prototype_accuracy(
        codes.content[queries], query_labels, codes.accumulate(gallery[:, :n]), test_values[gallery[:, 0]])
    out[f"matching/style_accuracy_k{n}"] = metrics.nearest_prototype_accuracy(
        codes.style[queries], query_labels, codes.style[gallery[:, :n]].mean(1), test_values[gallery[:, 0]])
  out["matching/chance"] = 1.0 / len(members)
  out["matching/num_groups"] = float(len(members))
  return gallery, out


def _quality(ctx: EvalContext, codes: _Codes) -> dict:
  """Sample and reconstruction quality, ``loss/pixel_mse``, ``samples.png`` and ``reconstructions.png``."""
  c, x, bs = ctx.config, ctx.test["image"], ctx.config.eval.batch_size
  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  prior = np.asarray(mlvae.prior_sample(c, jax.random.key(c.seed + 2), len(x)))
  sample = jax.jit(lambda z: mlvae.sample(ctx.run.models, ctx.state, z))    # z = [style, content]
  samples = batched(sample, prior, bs)
  recon = batched(sample, np.concatenate([codes.style, codes.content], axis=1), bs)
  save_samples(ctx, samples)
  save_reconstructions(ctx, x, recon)
  return {**sample_quality(ctx, "samples", samples, test_embedding),
          **sample_quality(ctx, "reconstructions", recon, test_embedding),
          "loss/pixel_mse": float(np.mean(np.square(recon - (x.astype(np.float32) / 127.5 - 1.0))))}


def _swaps(ctx: EvalContext, encode: Callable[[np.ndarray], _Codes], codes: _Codes, gallery: np.ndarray) -> dict:
  """``swap/*`` and the figures ``swap.png`` and ``accumulation.png``.

  Row r's style (the second gallery image of group r) with the content accumulated over group
  c's gallery, for every pair of up to 24 groups; re-encoding each swap tells whether its
  content still matches group c and its style still matches row r's image.
  """
  x, bs = ctx.test["image"], ctx.config.eval.batch_size
  decode = jax.jit(lambda s, cc: mlvae.decode(ctx.run.models, ctx.state, s, cc))
  n_swap = min(24, len(gallery))
  row_images, column_content = gallery[:n_swap, 1], codes.accumulate(gallery[:n_swap])
  rows_of, columns_of = np.divmod(np.arange(n_swap * n_swap), n_swap)
  swap = batched(lambda rc: decode(codes.style[row_images][rc[:, 0]], column_content[rc[:, 1]]),
                 np.stack([rows_of, columns_of], 1), bs)
  swap_u8 = images.to_uint8(swap)
  swapped = encode(swap_u8)
  out = {"swap/content_follows_column": metrics.nearest_prototype_accuracy(
             swapped.content, columns_of, column_content, np.arange(n_swap)),
         "swap/style_follows_row": metrics.nearest_prototype_accuracy(
             swapped.style, rows_of, codes.style[row_images], np.arange(n_swap)),
         "swap/chance": 1.0 / n_swap}
  shown = min(8, n_swap)
  cells = swap_u8.reshape(n_swap, n_swap, *x.shape[1:])[:shown, :shown].reshape(-1, *x.shape[1:])
  save_figure(ctx, "swap", _swap_grid(x[row_images[:shown]], x[gallery[:shown, 0]], cells))
  steps = [decode(codes.style[gallery[:shown, 0]], codes.accumulate(gallery[:shown, :n])) for n in MATCHING_GALLERY]
  decoded = images.to_uint8(np.stack([np.asarray(s) for s in steps], axis=1))   # [shown, 4, h, w, c]
  panel = np.concatenate([x[gallery[:shown]], decoded], axis=1)
  save_figure(ctx, "accumulation",
              images.make_grid(panel.reshape(-1, *x.shape[1:]), gallery.shape[1] + len(MATCHING_GALLERY)))
  return out


def _swap_grid(sources_style: np.ndarray, sources_content: np.ndarray, cells: np.ndarray) -> np.ndarray:
  """(n+1) x (m+1) grid: content sources along the top, style sources down the left, cell (r, c)
  the decoded swap; u8 inputs, the top-left corner blank."""
  n, m = len(sources_style), len(sources_content)
  blank = np.full((1, *cells.shape[1:]), 255, np.uint8)
  rows = [np.concatenate([blank, sources_content])]
  rows += [np.concatenate([sources_style[r:r + 1], cells[r * m:(r + 1) * m]]) for r in range(n)]
  return images.make_grid(np.concatenate(rows), m + 1)
