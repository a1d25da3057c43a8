"""Any tensorflow-datasets catalog dataset: ``data.name="tfds:<name>"`` (e.g. ``tfds:cifar10``).

The catalog builder is prepared as tfds prepares it (``data.manual_dir`` for datasets with
manual files, such as ``tfds:celeb_a``; TensorFlow if that builder needs it), in ArrayRecord,
and read without TensorFlow (tfds decodes images with Pillow or OpenCV). Its images
(``data.image_key``) and optional class labels (``data.label_key``, a ClassLabel feature) are
then converted as every dataset's are (``convert.square``: channels, crop, antialiased
resize) into a derived ArrayRecord dataset, ``CatalogImages``, prepared once per catalog
dataset, version and setting. The derived dataset has the base splits the config names
(``train`` of ``train[:50000]``), so split slicing works on it as on the catalog's.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
import json
import re

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from vaegan_jax.data import convert

PREFIX = "tfds:"


class CatalogError(ValueError):
  """The catalog dataset or one of its settings cannot be used; the message says which and the fix."""


def base_split(split: str) -> str:
  """``"train[:50000]"`` -> ``"train"``; ``"train+test"`` is not supported here (ValueError)."""
  if "+" in split:
    raise CatalogError(f"split {split!r}: a tfds: dataset takes one base split per setting; set "
                       "--config.data.train_split / eval_split to single splits (slices like train[:90%] work)")
  return re.sub(r"\[.*\]$", "", split)


def source_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The catalog builder ``name`` (without the ``tfds:`` prefix).

  Raises:
    CatalogError: no such dataset; the message lists close names.
  """
  try:
    return tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:
    known = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(name.split("/")[0].split(":")[0], known, n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise CatalogError(f"data.name={PREFIX}{name}: tensorflow-datasets has no dataset {name!r}.{hint} "
                       "The catalog: https://www.tensorflow.org/datasets/catalog/overview") from e


class CatalogImages(tfds.core.GeneratorBasedBuilder):
  """A catalog dataset's images (and labels), converted by ``convert.square``.

  Features: ``image`` u8[size, size, channels]; ``label`` (the source's ClassLabel names)
  when ``data.label_key`` names one.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Images converted by vaegan_jax.data.convert.square."}

  def __init__(self, *, source: tfds.core.DatasetBuilder, image_key: str, label_key: str, splits: tuple[str, ...],
               spec: convert.ImageSpec, **kwargs):
    self._source, self._image_key, self._label_key, self._splits, self._spec = source, image_key, label_key, splits, spec
    settings = [source.info.full_name, image_key, label_key, splits, dataclasses.asdict(spec)]
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    name = re.sub(r"[^a-z0-9_]", "_", source.info.full_name.lower())
    super().__init__(config=tfds.core.BuilderConfig(name=f"{name}_{fingerprint}", description=source.info.full_name),
                     **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self._spec
    features = {"image": tfds.features.Tensor(shape=(s.size, s.size, s.channels), dtype=np.uint8)}
    if self._label_key:
      features["label"] = tfds.features.ClassLabel(names=list(self._source.info.features[self._label_key].names))
    return tfds.core.DatasetInfo(
        builder=self, description=f"{self._source.info.full_name} converted to {s}.", disable_shuffling=True,
        features=tfds.features.FeaturesDict(features), metadata=tfds.core.MetadataDict(source=self._source.info.full_name))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in self._splits}

  def _generate_examples(self, split: str):
    source = self._source.as_data_source(split=split)
    notes = collections.Counter()
    for i in range(len(source)):
      record = source[i]
      example = {"image": convert.from_array(record[self._image_key], self._spec,
                                             f"{self._source.info.full_name} {split}[{i}]", notes)}
      if self._label_key:
        example["label"] = int(record[self._label_key])
      yield i, example
    if notes:
      logging.warning("%s %s: converted %s", self._source.info.full_name, split,
                      ", ".join(f"{n} {kind} image(s)" for kind, n in sorted(notes.items())))


def builder(config: ml_collections.ConfigDict, data_dir: str | None, manual_dir: str | None) -> CatalogImages:
  """Prepares the catalog dataset of ``config.data.name`` if needed and returns its derived builder.

  Raises:
    CatalogError: an unknown dataset, ``data.image_key`` or ``data.label_key`` not among its
      features (the message lists them), or a label feature that is not a ClassLabel.
  """
  name = config.data.name[len(PREFIX):]
  source = source_builder(name, data_dir)
  features = source.info.features
  keys = sorted(features.keys())
  for setting, key in (("image_key", config.data.image_key), ("label_key", config.data.label_key)):
    if key and key not in features:
      raise CatalogError(f"data.{setting}={key!r} is not a feature of {name} (its features: {keys}): "
                         f"set --config.data.{setting} to one of them" +
                         (" or '' for none" if setting == "label_key" else ""))
  label_key = config.data.label_key
  if label_key and not isinstance(features[label_key], tfds.features.ClassLabel):
    raise CatalogError(f"data.label_key={label_key!r} of {name} is a {type(features[label_key]).__name__}, not a "
                       "class label: set --config.data.label_key='' (no labels) or to a ClassLabel feature")
  if not source.is_prepared():
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    source.download_and_prepare(download_config=download_config)
  splits = tuple(dict.fromkeys(base_split(s) for s in (config.data.train_split, config.data.eval_split,
                                                         config.data.validation_split) if s))
  return CatalogImages(source=source, image_key=config.data.image_key, label_key=label_key, splits=splits,
                       spec=convert.ImageSpec.from_config(config), data_dir=data_dir, file_format="array_record")
