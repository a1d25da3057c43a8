"""What every evaluator works with: the restored run and its data (``EvalContext``), the
dataset's domain classifier (``classifier_for``) and batched device calls (``batched``)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm

from vaegan_jax import data, domain_classifier, trainer
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


def batched(fn: Callable, arrays: np.ndarray, batch_size: int) -> np.ndarray:
  """Applies a jitted ``fn`` to ``arrays`` in chunks of ``batch_size`` along the first axis and
  concatenates the host results (NumPy, ``fn``'s dtype)."""
  return np.concatenate([np.asarray(jax.device_get(fn(arrays[i:i + batch_size])))
                         for i in range(0, len(arrays), batch_size)])


def classifier_for(config, train: dict, test: dict) -> domain_classifier.DomainClassifier:
  """The dataset's cached domain classifier: attributes where the dataset has them, else labels.

  Raises:
    ValueError: the dataset has neither labels nor attributes.
  """
  info = data.dataset_info(config)
  if "attributes" in train:
    kind, targets, test_targets, names = "multilabel", train["attributes"], test["attributes"], info.attribute_names
  elif "label" in train:
    kind, targets, test_targets = "categorical", train["label"], test["label"]
    names = tuple(str(i) for i in range(int(targets.max()) + 1))
  else:
    raise ValueError(f"{config.data.name} has neither labels nor attributes to train a domain classifier on")
  return domain_classifier.load_or_train(
      config.data.name, kind, names, train["image"], targets, test["image"], test_targets,
      epochs=config.eval.classifier_epochs, seed=config.seed, cache_dir=config.eval.cache_dir or None)
