"""Batches for the CCVAE: a fixed labelled subset, interleaved with unlabelled batches at an exact rate.

``config.ccvae.supervision_rate`` = r is both the fraction of the training split that is
labelled (the paper's 0.004, 0.06, 0.2, 1.0) and the fraction of batches that are
supervised. The labelled subset, ``round(r * n)`` examples, is fixed by the seed
(``labelled_subset``); the other examples are the unlabelled ones. Batch i is supervised
exactly when ``floor((i + 1) r) > floor(i r)`` (``is_supervised``), so in any run of N
batches from the start exactly ``floor(N r)`` are supervised, spread evenly (the official
code interleaves one supervised batch every ``round(1 / r)`` or so, which is exact only
when 1 / r is an integer). Supervised batches walk through seeded permutations of the
labelled subset, unsupervised ones through permutations of the unlabelled rest, each as
an endless stream; an unsupervised batch carries zero labels, so no label leaks into it.

Batch i of the run is a pure function of (seed, i), so the iterator position stored in a
checkpoint resumes it exactly. The training split is held in memory (47 MB for MNIST, 56 MB
for the CelebA subset), as for TVAE's triplets.
"""

from __future__ import annotations

import fractions
import functools

import grain
import ml_collections
import numpy as np

from vaegan_jax import distributed
from vaegan_jax.data import pipeline


def label_matrix(arrays: dict[str, np.ndarray], label_names, attribute_names, dataset: str,
                 class_names=()) -> np.ndarray:
  """f32[n, L] binary labels of a split: the named CelebA attributes, or the class one-hot.

  Args:
    arrays: a split from ``pipeline.split_arrays``.
    label_names: ``config.ccvae.labels``: attribute names (CelebA), or classes by name
      (``class_names``, e.g. a folder's subfolders) or by number ("0".."9" for the digits).
    attribute_names: the dataset's attribute columns (``DatasetInfo.attribute_names``).
    dataset: the dataset's name, for the messages.
    class_names: the dataset's class names (``DatasetInfo.class_names``), or ().

  Raises:
    ValueError: a name the dataset does not have.
  """
  names = list(label_names)
  if "attributes" in arrays:
    unknown = [n for n in names if n not in attribute_names]
    if unknown:
      raise ValueError(f"config.ccvae.labels {unknown} are not attributes of {dataset}; its attributes are "
                       f"{list(attribute_names)}")
    columns = [list(attribute_names).index(n) for n in names]
    return np.asarray(arrays["attributes"][:, columns], np.float32)
  if "label" in arrays:
    count = max(len(class_names), int(arrays["label"].max()) + 1)
    index = {str(c): c for c in range(count)} | {n: c for c, n in enumerate(class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
      raise ValueError(f"config.ccvae.labels {unknown} are not classes of {dataset} (its classes are "
                       f"{list(class_names) or list(index)}, or their numbers 0..{count - 1}): "
                       "set --config.ccvae.labels to class names, e.g. the digits '0'..'9'")
    return (arrays["label"][:, None] == np.asarray([index[n] for n in names])[None]).astype(np.float32)
  raise ValueError(f"{dataset} has neither attributes nor class labels for the CCVAE")


def labelled_count(num_examples: int, rate: float) -> int:
  """How many training examples are labelled at supervision rate ``rate``: ``round(rate * n)``, at least 1."""
  return max(1, int(round(rate * num_examples)))


def labelled_subset(num_examples: int, rate: float, seed: int) -> np.ndarray:
  """i64[labelled_count] sorted indices of the labelled examples, drawn without replacement by
  ``numpy.random.default_rng(seed)``: the same (n, rate, seed) always give the same subset."""
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_examples, labelled_count(num_examples, rate), replace=False)).astype(np.int64)


def _fraction(rate: float) -> fractions.Fraction:
  return fractions.Fraction(rate).limit_denominator(1_000_000)


def supervised_before(step: int, rate: float) -> int:
  """How many of batches 0 .. step-1 are supervised: ``floor(step * rate)`` (exact rational arithmetic)."""
  r = _fraction(rate)
  return step * r.numerator // r.denominator


def is_supervised(step: int, rate: float) -> bool:
  """Whether batch ``step`` is a supervised one: ``floor((step + 1) r) > floor(step r)``."""
  return supervised_before(step + 1, rate) > supervised_before(step, rate)


def _stream(length: int, salt: int, start: int, count: int, cache) -> np.ndarray:
  """Elements start .. start+count-1 of the endless stream of ``cache(salt, epoch)``, the seeded
  permutations (each of ``length`` indices) of pool ``salt``."""
  positions = np.arange(start, start + count)
  epochs, offsets = np.divmod(positions, length)
  out = np.empty(count, np.int64)
  for epoch in np.unique(epochs):
    chosen = epochs == epoch
    out[chosen] = cache(salt, int(epoch))[offsets[chosen]]
  return out


def ccvae_dataset(config: ml_collections.ConfigDict, global_batch: int, seed: int) -> grain.MapDataset:
  """An infinite, indexable dataset of this process's share of each global batch.

  Element i is batch i of the run: ``{"image": u8[b, h, w, c], "label": f32[b, L],
  "supervised": bool[b]}`` with ``b = global_batch / jax.process_count()``; ``label`` is zero
  in unsupervised batches. With ``config.ccvae.objective == "classifier"`` (the
  supervised-only baseline) every batch is a supervised one.

  Raises:
    ValueError: the batch does not split over processes, or a label the dataset lacks.
  """
  first, per_process = distributed.process_rows(global_batch)
  arrays = pipeline.split_arrays(config, config.data.train_split)
  info = pipeline.dataset_info(config)
  labels = label_matrix(arrays, config.ccvae.labels, info.attribute_names, config.data.name, info.class_names)
  images, n = arrays["image"], len(arrays["image"])
  rate = config.ccvae.supervision_rate
  labelled = labelled_subset(n, rate, config.seed)
  unlabelled = np.setdiff1d(np.arange(n), labelled)
  every_batch = config.ccvae.objective == "classifier" or not len(unlabelled)
  pools = (unlabelled, labelled)

  @functools.lru_cache(maxsize=64)
  def permutation(salt: int, epoch: int) -> np.ndarray:
    return pools[salt][np.random.default_rng((seed, salt, epoch)).permutation(len(pools[salt]))]

  def batch(i: int, _) -> dict[str, np.ndarray]:
    supervised = every_batch or is_supervised(i, rate)
    # the how-many-th batch of its kind this is: its position in that kind's stream
    nth = (i if every_batch else supervised_before(i, rate)) if supervised else i - supervised_before(i, rate)
    chosen = _stream(len(pools[int(supervised)]), int(supervised), nth * global_batch + first, per_process,
                     permutation)
    return {"image": images[chosen], "label": labels[chosen] * np.float32(supervised),
            "supervised": np.full(per_process, supervised)}

  return grain.MapDataset.range(1).repeat().map_with_index(batch)
