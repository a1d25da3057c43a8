"""Grouped observations for ML-VAE: batches of whole groups (same digit, same identity).

A group is ``config.mlvae.group_size`` examples sharing the value of the feature
``config.mlvae.group_by`` ("label": MNIST's digit; "identity": a CelebA person). Every epoch,
each group value's examples are permuted and cut into groups of that size (the remainder,
fewer than a group, waits for the next epoch's permutation), and the groups are permuted;
each step takes the next ``batch_size / group_size`` groups. The groups of epoch e are a
pure function of (seed, e) (``epoch_groups``), so batch i of the run is a pure function of
(seed, i), and the iterator position that the checkpoint stores resumes the stream exactly.

Batches are laid out group-major, ``u8[groups, group_size, h, w, c]``, and the data mesh
shards the leading (group) axis: a group never straddles two devices or two processes.

The training split is held in memory (``pipeline.split_arrays``: 47 MB for MNIST, 56 MB for
the CelebA subset), as for TVAE's triplets.
"""

from __future__ import annotations

import functools

import grain
import ml_collections
import numpy as np

from vaegan_jax import distributed
from vaegan_jax.data import pipeline

GROUP_FEATURES = ("label", "identity")


def group_values(arrays: dict[str, np.ndarray], group_by: str, name: str) -> np.ndarray:
  """i64[n]: the group value (digit, identity id) of each example of a split.

  Args:
    arrays: a split from ``pipeline.split_arrays``.
    group_by: one of ``GROUP_FEATURES``.
    name: the dataset's name, for the error message.

  Raises:
    ValueError: the dataset has no such feature.
  """
  if group_by not in arrays:
    have = [k for k in GROUP_FEATURES if k in arrays]
    raise ValueError(f"{name} has no {group_by!r} feature to group by (it has {have or 'none'}): "
                     f"set --config.mlvae.group_by to one of {have}" if have else
                     f"{name} has no {group_by!r} feature to group by: use mnist, fashion_mnist, mnist5k "
                     "(label) or celeba64 (identity)")
  return np.asarray(arrays[group_by], np.int64)


def epoch_groups(values: np.ndarray, group_size: int, seed: int, epoch: int) -> np.ndarray:
  """The groups of one epoch: i64[num_groups, group_size] indices into ``values``.

  Each group value's examples are permuted and cut into groups of ``group_size`` (the last,
  partial one is dropped), then the groups of all values are permuted. A pure function of
  its arguments (``numpy.random.default_rng((seed, epoch))``).

  Raises:
    ValueError: no group value has ``group_size`` examples.
  """
  rng = np.random.default_rng((seed, epoch))
  chunks = []
  for value in np.unique(values):
    members = rng.permutation(np.flatnonzero(values == value))
    usable = len(members) // group_size * group_size
    if usable:
      chunks.append(members[:usable].reshape(-1, group_size))
  if not chunks:
    raise ValueError(f"no group has {group_size} examples: lower --config.mlvae.group_size")
  groups = np.concatenate(chunks)
  return groups[rng.permutation(len(groups))]


def groups_per_epoch(values: np.ndarray, group_size: int) -> int:
  """How many whole groups of ``group_size`` an epoch of ``values`` has."""
  return int(sum(n // group_size for n in np.unique(values, return_counts=True)[1]))


def group_dataset(config: ml_collections.ConfigDict, global_batch: int, seed: int) -> grain.MapDataset:
  """An infinite, indexable dataset of this process's share of each global batch of groups.

  Element i is batch i of the run: ``{"image": u8[g, K, h, w, c], "group": i64[g]}`` with
  ``K = config.mlvae.group_size`` and ``g = global_batch / K / jax.process_count()`` groups;
  ``group`` is the value of ``config.mlvae.group_by`` shared by the group.

  Raises:
    ValueError: the batch is not a whole number of groups, its groups do not split over
      processes, the dataset has no such feature, or an epoch has fewer groups than a batch.
  """
  k = config.mlvae.group_size
  if global_batch % k:
    raise ValueError(f"config.train.batch_size={global_batch} is not a whole number of groups of "
                     f"config.mlvae.group_size={k}: set --config.train.batch_size to a multiple of {k}")
  num_groups = global_batch // k
  first, per_process = distributed.process_rows(num_groups)
  arrays = pipeline.split_arrays(config, config.data.train_split)
  values = group_values(arrays, config.mlvae.group_by, config.data.name)
  images = arrays["image"]
  available = groups_per_epoch(values, k)
  if available < num_groups:
    raise ValueError(f"{config.data.name}:{config.data.train_split} makes {available} groups of {k} per epoch, "
                     f"fewer than the {num_groups} of a batch: lower --config.train.batch_size or "
                     "--config.mlvae.group_size")
  steps_per_epoch = available // num_groups   # the groups left over are reshuffled next epoch
  groups_of = functools.lru_cache(maxsize=2)(lambda epoch: epoch_groups(values, k, seed, epoch))

  def batch(i: int, _) -> dict[str, np.ndarray]:
    epoch, position = divmod(i, steps_per_epoch)
    start = position * num_groups + first
    chosen = groups_of(epoch)[start:start + per_process]
    return {"image": images[chosen], "group": values[chosen[:, 0]]}

  return grain.MapDataset.range(steps_per_epoch).repeat().map_with_index(batch)


def eval_groups(values: np.ndarray, group_size: int, seed: int) -> np.ndarray:
  """A fixed grouping of an evaluation split: ``epoch_groups`` of epoch 0 with ``seed``,
  i64[num_groups, group_size] indices; every value's examples in as many whole groups as fit."""
  return epoch_groups(values, group_size, seed, 0)
