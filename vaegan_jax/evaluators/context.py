"""What every evaluator works with: the restored run and its data (``EvalContext``), the
dataset's domain classifier (``classifier_for``) and batched device calls (``batched``)."""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm import tqdm

from vaegan_jax import data, domain_classifier, trainer
from vaegan_jax.parallel import batched  # noqa: F401  # the evaluators' batched device calls
from vaegan_jax.methods.common import TrainState


@dataclasses.dataclass
class EvalContext:
  """What an evaluator works with.

  Attributes:
    run: the restored ``trainer.Run`` (config, models, dataset info).
    state: the restored ``TrainState``.
    step: the checkpoint's step.
    test: the whole test split as arrays (``data.split_arrays``).
    train: the whole train split as arrays.
    classifier: the dataset's ``DomainClassifier``.
    outdir: the folder figures go to (becomes ``eval/<step>``).
    progress: a tqdm bar; evaluators call ``progress.update()`` per stage.
  """

  run: trainer.Run
  state: TrainState
  step: int
  test: dict[str, np.ndarray]
  train: dict[str, np.ndarray]
  classifier: domain_classifier.DomainClassifier
  outdir: str
  progress: tqdm

  @property
  def config(self):
    return self.run.config


ROTATION_IMAGES = 10_000  # unlabelled data: images (per split) the rotation classifier learns from


def rotations(images: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
  """The first ``count`` images, each turned by 0, 90, 180 and 270 degrees: (u8[4n, h, w, c],
  i64[4n] the number of quarter turns). The self-supervised task of Gidaris et al. 2018
  ("Unsupervised representation learning by predicting image rotations"), which needs no label."""
  images = images[:count]
  turned = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])
  return turned, np.repeat(np.arange(4), len(images))


def classifier_for(config, train: dict, test: dict) -> domain_classifier.DomainClassifier:
  """The dataset's cached domain classifier, whose embedding the sample-quality scores use:
  attributes where the dataset has them, else class labels, else (unlabelled data, such as a
  folder of photos) the rotation of the image (``rotations``), which needs no label.
  """
  info = data.dataset_info(config)
  if "attributes" in train:
    kind, targets, test_targets, names = "multilabel", train["attributes"], test["attributes"], info.attribute_names
    images, test_images = train["image"], test["image"]
  elif "label" in train:
    kind, targets, test_targets = "categorical", train["label"], test["label"]
    names = tuple(str(i) for i in range(int(targets.max()) + 1))
    images, test_images = train["image"], test["image"]
  else:
    kind, names = "categorical", ("0", "90", "180", "270")
    images, targets = rotations(train["image"], ROTATION_IMAGES)
    test_images, test_targets = rotations(test["image"], ROTATION_IMAGES)
  return domain_classifier.load_or_train(
      config.data.name.replace(":", "_"), kind, names, images, targets, test_images, test_targets,
      epochs=config.eval.classifier_epochs, seed=config.seed, cache_dir=config.eval.cache_dir or None)
