"""Triplets for TVAE: an anchor, a positive of the anchor's class and a negative of another class.

The training split is held in memory (``pipeline.split_arrays``: 47 MB for MNIST's 60,000
digits): reading each triplet's three images by random access from ArrayRecord, with a PNG
decode each, gave 4 batches of 128 triplets per second on 2 CPU cores, slower than the step.
Training triplets are drawn by the input pipeline: every training example is an anchor once
per epoch (a seeded permutation, as in ``pipeline.train_dataset``), and its positive and
negative are drawn by grain's ``random_map``, whose generator is seeded by the run's seed and
the element's index. Batch i of the run is therefore a pure function of (seed, i), and the
iterator position that the checkpoint stores resumes it exactly. Evaluation uses a fixed,
seeded set of test triplets drawn evenly per anchor class (``eval_triplets``).
"""

from __future__ import annotations

import grain
import ml_collections
import numpy as np

from vaegan_jax.data import pipeline


def labels_of(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
  """i64[n]: the class labels of a split loaded by ``pipeline.split_arrays``.

  Raises:
    ValueError: the dataset has no ``label`` feature (triplets need classes).
  """
  if "label" not in arrays:
    raise ValueError(f"{name} has no class labels, which triplets need: use mnist, fashion_mnist or mnist5k")
  return np.asarray(arrays["label"], np.int64)


def _by_class(labels: np.ndarray) -> list[np.ndarray]:
  classes = np.unique(labels)
  if len(classes) < 2:
    raise ValueError("triplets need at least two classes")
  return [np.flatnonzero(labels == c) for c in range(int(classes.max()) + 1)]


def draw(anchor: int, labels: np.ndarray, by_class: list[np.ndarray], rng: np.random.Generator) -> tuple[int, int]:
  """(positive, negative) indices for ``anchor``: uniform over the other members of its class,
  and uniform over the members of a class drawn uniformly from the other classes."""
  same = by_class[labels[anchor]]
  j = int(rng.integers(len(same) - 1))          # uniform over the class minus the anchor:
  positive = int(same[j] if same[j] != anchor else same[-1])   # the anchor's slot takes the last one
  others = [c for c in range(len(by_class)) if c != labels[anchor] and len(by_class[c])]
  negative_class = by_class[others[int(rng.integers(len(others)))]]
  return positive, int(negative_class[int(rng.integers(len(negative_class)))])


def eval_triplets(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """A fixed set of ``per_class`` triplets per anchor class: i64[classes * per_class, 3] indices.

  Anchors of each class are drawn without replacement while the class has enough examples
  (with replacement beyond), positives and negatives by ``draw``; the same (labels,
  per_class, seed) always give the same triplets.
  """
  rng = np.random.default_rng(seed)
  by_class = _by_class(labels)
  rows = []
  for members in by_class:
    if len(members) < 2:
      continue
    anchors = rng.choice(members, per_class, replace=per_class > len(members))
    rows.extend((int(a), *draw(int(a), labels, by_class, rng)) for a in anchors)
  return np.asarray(rows, np.int64)


def triplet_dataset(config: ml_collections.ConfigDict, global_batch: int, seed: int) -> grain.MapDataset:
  """An infinite, indexable dataset of this process's share of each global batch of triplets.

  Element i is batch i of the run: ``{"anchor", "positive", "negative": u8[b, h, w, c],
  "label": i64[b] (the anchor's class), "negative_label": i64[b]}`` with
  ``b = global_batch / jax.process_count()``.

  Raises:
    ValueError: the dataset has no labels, or the batch does not split over processes.
  """
  arrays = pipeline.split_arrays(config, config.data.train_split)
  labels = labels_of(arrays, config.data.name)
  images = arrays["image"]
  by_class = _by_class(labels)

  def pick(anchor, rng: np.random.Generator):
    positive, negative = draw(int(anchor), labels, by_class, rng)
    return int(anchor), positive, negative

  def read(triplets):
    a, p, n = triplets
    return {"anchor": images[a], "positive": images[p], "negative": images[n],
            "label": labels[a], "negative_label": labels[n]}

  anchors = grain.MapDataset.range(len(labels)).shuffle(seed=seed).repeat()
  return pipeline.process_share(anchors.random_map(pick, seed=seed), global_batch).map(read)
