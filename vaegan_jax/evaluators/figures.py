"""Figures every evaluator draws: sample and reconstruction grids, interpolations, latent scatter plots.

Each writes a PNG into the evaluation's folder (``EvalContext.outdir``); images come in as f32
in [-1, 1] (model outputs) or u8 (test images), as each function says.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from vaegan_jax import images
from vaegan_jax.evaluators.context import EvalContext, batched


def save_figure(ctx: EvalContext, name: str, grid: np.ndarray) -> None:
  """Writes u8[H, W, c] ``grid`` as ``<outdir>/<name>.png``."""
  images.save_png(os.path.join(ctx.outdir, f"{name}.png"), grid)


def save_samples(ctx: EvalContext, samples: np.ndarray) -> None:
  """``samples.png``: the first ``train.num_image_rows``² of f32[n, h, w, c] samples in [-1, 1]."""
  rows = ctx.config.train.num_image_rows
  save_figure(ctx, "samples", images.make_grid(images.to_uint8(samples[:rows * rows]), rows))


def save_reconstructions(ctx: EvalContext, inputs: np.ndarray, reconstructions: np.ndarray) -> None:
  """``reconstructions.png``: rows of u8 ``inputs`` above rows of their f32 ``reconstructions`` in [-1, 1]."""
  rows = ctx.config.train.num_image_rows
  n = rows * rows // 2
  save_figure(ctx, "reconstructions", images.make_grid(
      images.interleave_rows(inputs[:n], images.to_uint8(reconstructions[:n]), rows), rows))


def interpolation_grid(ctx: EvalContext, z_a: np.ndarray, z_b: np.ndarray, decode: Callable,
                       ends: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
  """Rows of Dec((1 - t) z_a + t z_b) for ``eval.interpolation_steps`` values of t in [0, 1]
  (z_a, z_b: f32[rows, d]), framed by the two u8 input images ``ends`` when given: a u8 grid."""
  t = np.linspace(0.0, 1.0, ctx.config.eval.interpolation_steps, dtype=np.float32)
  z = (1.0 - t)[None, :, None] * z_a[:, None] + t[None, :, None] * z_b[:, None]
  decoded = images.to_uint8(batched(decode, z.reshape(-1, z.shape[-1]), ctx.config.eval.batch_size))
  decoded = decoded.reshape(len(z_a), len(t), *decoded.shape[1:])
  if ends is not None:
    decoded = np.concatenate([ends[0][:, None], decoded, ends[1][:, None]], axis=1)
  return images.make_grid(decoded.reshape(-1, *decoded.shape[2:]), decoded.shape[1])


def latent_figure(mu: np.ndarray, labels: np.ndarray | None, path: str, title: str) -> None:
  """Writes a PNG scatter of ``mu`` (f32[n, d]) coloured by ``labels`` (one colour when None,
  for unlabelled data): the points themselves when d == 2, else their 2-D PCA projection."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
  mu = np.asarray(mu, np.float64)
  projected = mu if mu.shape[1] == 2 else PCA(n_components=2, random_state=0).fit_transform(mu)
  fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
  points = ax.scatter(projected[:, 0], projected[:, 1], c=labels, cmap="tab10" if labels is not None else None,
                      s=3, alpha=0.7, linewidths=0)
  if labels is not None:
    ax.legend(*points.legend_elements(), loc="best", fontsize=6, markerscale=0.8, title="class", title_fontsize=6)
  ax.set_title(title, fontsize=8)
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)

