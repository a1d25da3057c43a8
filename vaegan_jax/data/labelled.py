"""Batches for the adversarial autoencoder: labels for the conditioned prior, a balanced labelled
subset for the semi-supervised AAE, and the one-class split of anomaly detection.

As for TVAE's triplets (``triplets.py``), the training split is held in memory (47 MB for
MNIST) and batch i of the run is a pure function of (seed, i): every training example is
seen once per epoch in a seeded permutation, and the semi-supervised AAE's labelled example
of each slot is drawn by grain's ``random_map``, seeded by the run's seed and the element's
index. The iterator position stored in a checkpoint therefore resumes the stream exactly.
"""

from __future__ import annotations

import grain
import ml_collections
import numpy as np

from vaegan_jax.data import pipeline


def labelled_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
  """The indices of a class-balanced labelled subset: ``count / classes`` examples of each class.

  The semi-supervised protocol of Makhzani et al. 2015 (sec. 5): 100 (or 1000) MNIST labels,
  the same number per digit. Drawn without replacement by ``numpy.random.default_rng(seed)``,
  so the same (labels, count, seed) always give the same subset.

  Args:
    labels: i64[n] class of each training example, classes 0..K-1.
    count: size of the subset, a multiple of K.

  Returns:
    i64[count] sorted indices into ``labels``.

  Raises:
    ValueError: ``count`` is not a positive multiple of the number of classes, or a class has
      fewer examples than its share.
  """
  classes = int(labels.max()) + 1
  if count <= 0 or count % classes:
    raise ValueError(f"config.aae.num_labels={count} must be a positive multiple of the {classes} classes "
                     "(so that every class has as many labels): set --config.aae.num_labels, e.g. 100 or 1000")
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(classes):
    members = np.flatnonzero(labels == c)
    if len(members) < count // classes:
      raise ValueError(f"class {c} has {len(members)} examples, fewer than the {count // classes} labels per class "
                       "asked for: lower --config.aae.num_labels")
    chosen.append(rng.choice(members, count // classes, replace=False))
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def train_arrays(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The training split in memory, restricted to ``config.aae.normal_class`` when it is >= 0
  (anomaly detection's one-class protocol: train on the normal class only).

  Returns:
    ``{"image": u8[n, h, w, c], "label": i64[n]}``; labels are -1 on unlabelled data, which only
    the unconditioned, unsupervised AAE accepts (its step does not read them).

  Raises:
    ValueError: the dataset has no labels and the setting needs them, or the normal class has
      no examples.
  """
  arrays = pipeline.split_arrays(config, config.data.train_split)
  needs = [why for why, on in (("method='semi_aae'", config.method == "semi_aae"),
                               ("aae.condition_on_label", config.aae.condition_on_label),
                               ("aae.normal_class >= 0", config.aae.normal_class >= 0)) if on]
  if "label" not in arrays and not needs:   # an unlabelled image folder: the step never reads the labels
    return {"image": arrays["image"], "label": np.full(len(arrays["image"]), -1, np.int64)}
  if "label" not in arrays:
    raise ValueError(f"{config.data.name} has no class labels, which {needs[0]} needs: use labelled data (a "
                     "folder's labels are its first-level subfolders) or the unsupervised, unconditioned AAE")
  labels = np.asarray(arrays["label"], np.int64)
  keep = np.arange(len(labels))
  if config.aae.normal_class >= 0:
    keep = np.flatnonzero(labels == config.aae.normal_class)
    if not len(keep):
      raise ValueError(f"config.aae.normal_class={config.aae.normal_class} has no examples in "
                       f"{config.data.name}:{config.data.train_split}")
  return {"image": arrays["image"][keep], "label": labels[keep]}


def aae_dataset(config: ml_collections.ConfigDict, global_batch: int, seed: int) -> grain.MapDataset:
  """An infinite, indexable dataset of this process's share of each global batch.

  Element i is batch i of the run: ``{"image": u8[b, h, w, c], "label": i64[b]}`` with
  ``b = global_batch / jax.process_count()``; for ``method == "semi_aae"`` also
  ``"labelled_image"`` and ``"labelled_label"``: one example per slot drawn uniformly from the
  fixed subset ``labelled_subset(labels, config.aae.num_labels, config.seed)``.

  Raises:
    ValueError: no labels, an empty normal class, a bad ``num_labels``, or a batch that does
      not split over processes or exceeds the (one-class) training split.
  """
  arrays = train_arrays(config)
  images, labels = arrays["image"], arrays["label"]
  if len(labels) < global_batch:
    raise ValueError(f"batch {global_batch} exceeds the {len(labels)} training examples "
                     f"(normal_class={config.aae.normal_class}); lower --config.train.batch_size")
  order = grain.MapDataset.range(len(labels)).shuffle(seed=seed).repeat()
  if config.method == "semi_aae":
    subset = labelled_subset(labels, config.aae.num_labels, config.seed)
    pairs = order.random_map(lambda i, rng: (int(i), int(subset[int(rng.integers(len(subset)))])), seed=seed)

    def read(rows):
      i, j = rows
      return {"image": images[i], "label": labels[i], "labelled_image": images[j], "labelled_label": labels[j]}

    return pipeline.process_share(pairs, global_batch).map(read)
  return pipeline.process_share(order, global_batch).map(lambda i: {"image": images[i], "label": labels[i]})
