"""Directions in a model's latent space for the explorer's sliders, and the code edits they make.

Every slider is one ``Direction``: moving it from its start value ``t0`` to ``t`` adds
``(t - t0) * vector`` to the code. Which directions a model gets:

* attribute vectors (VAE/GAN and VAE on data with attributes, such as CelebA's 40): the mean
  code of training images with the attribute minus the mean of those without (Larsen et al.
  2016, sec. 5.2), exactly ``vaegan_jax.Model.attribute_vectors`` as eval.py computes them;
  the slider counts vectors added (start 0);
* principal components of the test codes (any model with an encoder; of prior draws for the
  GAN, which has none): one standard deviation of the codes along the component per unit
  (start 0);
* CCVAE: each label's block of z_c between its two prior locations (Joy et al. 2021, sec. 4):
  0 is the location of p(z_c | y = 0), 1 that of p(z_c | y = 1); the start is where the
  image's own block lies on that line (its projection), so an untouched slider changes nothing.

Two more edits take a second code: ``blend`` moves a fraction of the way to it, over the
whole code (interpolation, as ``Model.interpolate``) or over ML-VAE's content part only
(Bouchacourt et al. 2018, fig. 3: the content of another group with this image's style).
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_COMPONENTS = 10   # principal-component sliders shown (fewer when the code is smaller)


@dataclasses.dataclass(frozen=True)
class Direction:
  """One slider. ``vector`` is f32[latent_dim]; the slider runs over [low, high].

  ``kind`` says what its value means: "add" (multiples of ``vector`` added, start 0) or
  "between" (CCVAE: 0 and 1 are the block's two prior locations; ``origin`` f32[latent_dim]
  is the code with that block at the y = 0 location and zeros elsewhere, ``block`` the
  block's (start, stop) in the code)."""

  id: str
  group: str
  name: str
  vector: np.ndarray
  low: float
  high: float
  kind: str = "add"
  block: tuple[int, int] | None = None
  origin: np.ndarray | None = None

  def start(self, code: np.ndarray) -> float:
    """The slider's value for an unedited f32[latent_dim] code: 0 for "add"; for "between",
    the projection of the code's block onto the line between the two prior locations."""
    if self.kind == "add":
      return 0.0
    lo, hi = self.block
    d = self.vector[lo:hi]
    return float(np.dot(code[lo:hi] - self.origin[lo:hi], d) / max(float(np.dot(d, d)), 1e-12))

  def describe(self) -> dict:
    """The JSON the page builds the slider from."""
    return {"id": self.id, "group": self.group, "name": self.name, "low": self.low, "high": self.high,
            "kind": self.kind}


def principal_components(codes: np.ndarray, count: int = MAX_COMPONENTS, group: str = "principal component"
                         ) -> list[Direction]:
  """The top ``count`` principal components of f32[n, d] codes, each scaled to one standard
  deviation of the codes along it (slider range -3 .. 3 standard deviations).

  Raises:
    ValueError: fewer than two codes.
  """
  codes = np.asarray(codes, np.float64)
  if len(codes) < 2:
    raise ValueError(f"principal components need at least two codes; got {len(codes)}")
  centred = codes - codes.mean(0)
  _, singular, components = np.linalg.svd(centred, full_matrices=False)
  std = singular / np.sqrt(len(codes) - 1)
  k = min(count, len(std), len(codes) - 1)   # n centred codes span at most n - 1 directions
  return [Direction(f"pc{i}", group, f"PC {i + 1} ({100 * std[i] ** 2 / max(np.sum(std ** 2), 1e-12):.0f}% var.)",
                    (components[i] * std[i]).astype(np.float32), -3.0, 3.0) for i in range(k)]


def attribute_directions(vectors: dict[str, np.ndarray]) -> list[Direction]:
  """One "add" slider per attribute vector (``Model.attribute_vectors``), range -2 .. 2 vectors."""
  return [Direction(f"attr_{name}", "attribute", name.replace("_", " "), np.asarray(v, np.float32), -2.0, 2.0)
          for name, v in vectors.items()]


def label_block_directions(labels: list[str], loc_false: np.ndarray, loc_true: np.ndarray,
                           latent_dim: int) -> list[Direction]:
  """CCVAE: one "between" slider per label, its block z_c[i] of f32[L, block] prior locations
  (``ccvae.prior_parameters``) moved from loc_false (0) to loc_true (1); range -0.5 .. 1.5."""
  block = loc_true.shape[1]
  out = []
  for i, name in enumerate(labels):
    lo, hi = i * block, (i + 1) * block
    vector = np.zeros(latent_dim, np.float32)
    vector[lo:hi] = loc_true[i] - loc_false[i]
    origin = np.zeros(latent_dim, np.float32)
    origin[lo:hi] = loc_false[i]
    out.append(Direction(f"label_{name}", "label block", name.replace("_", " "), vector, -0.5, 1.5,
                         "between", (lo, hi), origin))
  return out


def edit(code: np.ndarray, directions: dict[str, Direction], moves: dict[str, float],
         other: np.ndarray | None = None, blend: float = 0.0, mask: np.ndarray | None = None) -> np.ndarray:
  """The edited code: ``code + sum_i moves[i] * vector_i``, then ``blend`` of the way to ``other``.

  Args:
    code: f32[latent_dim], the unedited code.
    directions: {id: Direction}.
    moves: {direction id: t - t0}, each slider's displacement from its start.
    other: f32[latent_dim] or None: the code to blend towards.
    blend: in [0, 1]; 0 leaves the code, 1 takes ``other`` (on ``mask``).
    mask: bool[latent_dim] or None (all): the dimensions that blend (ML-VAE: the content).

  Returns:
    f32[latent_dim].

  Raises:
    KeyError: a move of a direction not in ``directions``.
    ValueError: a non-finite move or blend, or a blend without ``other``.
  """
  out = np.asarray(code, np.float32).copy()
  for key, move in moves.items():
    if key not in directions:
      raise KeyError(f"unknown direction {key!r}; this model has {sorted(directions)}")
    if not np.isfinite(move):
      raise ValueError(f"direction {key!r}: move {move} is not a finite number")
    out += np.float32(move) * directions[key].vector
  if blend:
    if other is None or not np.isfinite(blend):
      raise ValueError(f"blend={blend} needs a finite value and a second code to blend towards")
    step = np.float32(blend) * (np.asarray(other, np.float32) - out)
    out += step if mask is None else np.where(mask, step, np.float32(0))
  return out
