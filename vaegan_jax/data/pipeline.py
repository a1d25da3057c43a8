"""From a config to batches: prepare the tfds builder, read ArrayRecord, batch with grain.

Main path (chosen for a TensorFlow-free core; see docs/data.md): every dataset is a
tensorflow-datasets builder prepared once to ArrayRecord, read by random access with
``tfds.data_source`` and shuffled, sharded per process and batched by grain. grain's
``MapDataset`` is indexable, so the iterator position is one integer that the checkpoint
stores; a resumed run sees exactly the batches an uninterrupted run would have seen.
``data.name`` picks the builder: the project's own (``builders``: mnist5k, mnist and
fashion_mnist from their IDX files, celeba64), a folder of images (``folder``), or any tfds
catalog dataset (``tfds:<name>``, ``catalog``). None needs TensorFlow to prepare, except
catalog datasets whose builders encode images with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from vaegan_jax import distributed
from vaegan_jax.data import builders  # importing registers mnist5k, mnist_idx, fashion_mnist_idx, celeba64
from vaegan_jax.data import catalog, folder

DATA_ENV = "VAEGAN_DATA_DIR"
# Folder under $VAEGAN_DATA_DIR (e.g. ../shared/data) holding each dataset's raw files.
_MANUAL_SUBDIR = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "celeba64": "celeba"}
# data.name -> the registered builder that prepares it from local files.
_BUILDER = {"mnist": "mnist_idx", "fashion_mnist": "fashion_mnist_idx"}
_KEEP = ("image", "label", "attributes", "identity")


class DataError(RuntimeError):
  """Dataset files exist but cannot be used (corrupt or unreadable); the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the models and the train loop need to know about a dataset.

  Attributes:
    name: the config's ``data.name``.
    image_shape: (height, width, channels) of the u8 images.
    num_train: examples in the train split.
    num_eval: examples in the eval split.
    attribute_names: names of the binary ``attributes`` columns, or () if none.
    class_names: names of the ``label`` classes in index order, or () if none.
  """

  name: str
  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int
  attribute_names: tuple[str, ...] = ()
  class_names: tuple[str, ...] = ()


def info_to_json(info: DatasetInfo) -> dict:
  """``info`` as a JSON-compatible dict (``info_from_json`` reads it back)."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(info).items()}


def info_from_json(values: dict) -> DatasetInfo:
  """The ``DatasetInfo`` of ``info_to_json``.

  Raises:
    ValueError: a field is missing, unknown or of the wrong type.
  """
  fields = {f.name for f in dataclasses.fields(DatasetInfo)}
  if not isinstance(values, dict) or set(values) - fields or {"name", "image_shape"} - set(values):
    raise ValueError(f"not a dataset description: expected the fields {sorted(fields)}")
  try:
    info = DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    if len(info.image_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in info.image_shape):
      raise ValueError(f"image_shape {info.image_shape} is not (height, width, channels)")
  except TypeError as e:
    raise ValueError(f"not a dataset description ({e})") from e
  return info


def manual_dir(config: ml_collections.ConfigDict) -> str | None:
  """The raw-files folder: ``config.data.manual_dir``, else ``$VAEGAN_DATA_DIR/<dataset>``."""
  if config.data.manual_dir:
    return os.path.expanduser(config.data.manual_dir)
  root = os.environ.get(DATA_ENV)
  if root and config.data.name in _MANUAL_SUBDIR:
    return os.path.join(os.path.expanduser(root), _MANUAL_SUBDIR[config.data.name])
  return None


def _builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  data_dir = os.path.expanduser(config.data.data_dir) if config.data.data_dir else None
  if config.data.name == "folder":
    return folder.builder(config, data_dir)
  if config.data.name.startswith(catalog.PREFIX):
    return catalog.builder(config, data_dir, manual_dir(config))
  return tfds.builder(_BUILDER.get(config.data.name, config.data.name), data_dir=data_dir, file_format="array_record")


def check_raw_files(name: str, folder: str | None) -> None:
  """Checks that ``folder`` holds every raw file of dataset ``name``, whole and unchanged.

  Args:
    name: a dataset of ``builders.RAW_FILES`` (others have nothing to check).
    folder: the manual_dir (``manual_dir(config)``), or None if none is configured.

  Raises:
    FileNotFoundError: no folder is configured, or a file is missing.
    DataError: a file's size or sha256 differs from the published one (truncated or corrupt).
  """
  expected = builders.RAW_FILES.get(name, {})
  if not expected:
    return
  where = (f"Set --config.data.manual_dir=/path/to/{_MANUAL_SUBDIR[name]} or the environment variable "
           f"{DATA_ENV} to the folder holding {_MANUAL_SUBDIR[name]}/ (e.g. {DATA_ENV}=../shared/data).")
  if not folder:
    raise FileNotFoundError(f"{name} is prepared from local files ({', '.join(expected)}) and no folder is "
                            f"set. {where}")
  for filename, (size, sha256) in expected.items():
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{name}: {path} is missing. {where}")
    actual_size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 22), b""):
        digest.update(block)
    if actual_size != size or digest.hexdigest() != sha256:
      raise DataError(
          f"{name}: {path} is truncated or corrupt ({actual_size:,} bytes, sha256 {digest.hexdigest()[:12]}...; "
          f"expected {size:,} bytes, sha256 {sha256[:12]}...). Copy it again from its source "
          "(../shared/data/README.md lists every file's size and sha256).")


def _check_readable(builder: tfds.core.DatasetBuilder, config: ml_collections.ConfigDict) -> None:
  """Reads the first and last example of the train, eval and validation splits (a truncated file fails here)."""
  for split in filter(None, (config.data.train_split, config.data.eval_split, config.data.validation_split)):
    try:
      source = builder.as_data_source(split=split)
      source[0], source[len(source) - 1]  # pylint: disable=pointless-statement
    except Exception as e:  # pylint: disable=broad-except  # tfds/array_record raise many types
      if isinstance(e, (KeyError, ValueError)) and ("split" in str(e).lower() or "slice" in str(e).lower()):
        sizes = {name: s.num_examples for name, s in builder.info.splits.items()}
        raise ValueError(f"{config.data.name} has no split {split!r} ({str(e)[:120]}; its splits and sizes: "
                         f"{sizes}): set --config.data.train_split / eval_split / validation_split") from e
      raise DataError(
          f"the prepared {config.data.name} data in {builder.data_dir} cannot be read ({type(e).__name__}: "
          f"{str(e)[:200]}). Delete that folder and run again to prepare it anew from the raw files.") from e


def prepare(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Returns the dataset's tfds builder, preparing it to ArrayRecord first if needed.

  Before preparing, the raw files are checked (``check_raw_files``); after, the first and
  last example of the train and eval splits are read, so a broken dataset fails here, with
  the fix in the message, rather than in a reader thread mid-training.

  Raises:
    FileNotFoundError: raw files (CelebA's npz, the IDX files) are neither under
      ``config.data.manual_dir`` nor under ``$VAEGAN_DATA_DIR/<dataset>``.
    ValueError: a configured split does not exist.
    DataError: a raw file is truncated or corrupt; the prepared copy is not ArrayRecord; or it
      cannot be read.
    folder.FolderError, catalog.CatalogError, convert.ImageError (ValueErrors): an image
      folder or catalog dataset that cannot be used; the message names the file or setting.
  """
  builder = _builder(config)
  if not builder.is_prepared():
    name, manual = config.data.name, manual_dir(config)
    check_raw_files(name, manual)
    download_config = tfds.download.DownloadConfig(manual_dir=manual) if manual else None
    builder.download_and_prepare(download_config=download_config)
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise DataError(
        f"{builder.data_dir} holds {config.data.name} as {builder.info.file_format}, but this "
        "project reads ArrayRecord: set --config.data.data_dir to another folder to prepare it again")
  _check_readable(builder, config)
  return builder


def dataset_info(config: ml_collections.ConfigDict) -> DatasetInfo:
  """Shape and size of the configured dataset (prepares it if needed)."""
  builder = prepare(config)
  info = builder.info
  names = tuple(info.metadata.get("attribute_names", ())) if info.metadata else ()
  label = info.features["label"] if "label" in info.features else None
  classes = tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else ()
  return DatasetInfo(
      name=config.data.name, image_shape=tuple(info.features["image"].shape),
      num_train=info.splits[config.data.train_split].num_examples,
      num_eval=info.splits[config.data.eval_split].num_examples, attribute_names=names, class_names=classes)


def example(record: dict) -> dict[str, np.ndarray]:
  out = {k: np.asarray(record[k]) for k in _KEEP if k in record}
  out["image"] = out["image"].astype(np.uint8)
  return out


def process_share(indices: grain.MapDataset, global_batch: int) -> grain.MapDataset:
  """Cuts a stream of example indices into global batches and keeps this process's rows of each.

  Args:
    indices: a dataset of ints, or of tuples of ints (e.g. triplets); one global batch is
      ``global_batch`` consecutive elements (within one epoch of a finite dataset).
    global_batch: ``config.train.batch_size``.

  Returns:
    A dataset whose element i holds rows ``[first, first + b)`` of global batch i
    (``distributed.process_rows``): i64[b], or a tuple of i64[b]. With one process, the whole
    batch. Only the indices of the other processes' rows are computed, never their images.
  """
  first, count = distributed.process_rows(global_batch)

  def rows(batch):
    return tuple(b[first:first + count] for b in batch) if isinstance(batch, tuple) else batch[first:first + count]

  return indices.batch(global_batch, drop_remainder=True).map(rows)


def train_dataset(config: ml_collections.ConfigDict, global_batch: int, seed: int) -> grain.MapDataset:
  """An infinite, indexable dataset of this process's share of each global batch.

  Element i is batch i of the run: ``{"image": u8[b, h, w, c], ...}`` with
  ``b = global_batch / jax.process_count()``, rows ``process_rows(global_batch)`` of the
  global batch. Each epoch is a fresh seeded permutation (grain's ``shuffle`` reseeds per
  epoch, as ``repeat`` passes the epoch on); the incomplete last batch is dropped.

  Raises:
    ValueError: the global batch does not split over processes, or exceeds the split.
  """
  builder = prepare(config)
  source = builder.as_data_source(split=config.data.train_split)
  if len(source) < global_batch:
    raise ValueError(f"batch {global_batch} exceeds the {len(source)} examples of "
                     f"{config.data.name}:{config.data.train_split}; lower --config.train.batch_size")
  order = grain.MapDataset.range(len(source)).shuffle(seed=seed)

  def read(rows: np.ndarray) -> dict[str, np.ndarray]:
    examples = [example(r) for r in source.__getitems__([int(i) for i in rows])]
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}

  return process_share(order, global_batch).repeat().map(read)


def train_iterator(config: ml_collections.ConfigDict, global_batch: int, seed: int,
                   state: dict | None = None, dataset=None) -> grain.DatasetIterator:
  """A prefetching iterator over ``dataset`` (default ``train_dataset``; TVAE passes
  ``triplets.triplet_dataset``); ``state`` (from ``get_state()``) resumes it."""
  ds = (dataset or train_dataset)(config, global_batch, seed)
  options = grain.ReadOptions(num_threads=config.data.num_threads, prefetch_buffer_size=config.data.prefetch)
  it = iter(ds.to_iter_dataset(options))
  if state is not None:
    it.set_state(state)
  return it


def split_arrays(config: ml_collections.ConfigDict, split: str, count: int | None = None) -> dict[str, np.ndarray]:
  """The first ``count`` (default: all) examples of ``split``, in order, as stacked arrays.

  Returns:
    ``{"image": u8[n, h, w, c], ...}`` plus ``label`` (i64[n]), ``attributes`` (bool[n, 40])
    and ``identity`` (i32[n]) where the dataset has them.
  """
  source = prepare(config).as_data_source(split=split)
  n = len(source) if count is None else min(count, len(source))
  examples = [example(r) for r in source.__getitems__(list(range(n)))]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def eval_images(config: ml_collections.ConfigDict, count: int) -> dict[str, np.ndarray]:
  """The first ``count`` examples of the eval split, in order: ``{"image": u8[n, h, w, c], ...}``."""
  return split_arrays(config, config.data.eval_split, count)
