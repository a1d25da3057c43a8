"""Your own images: ``data.name="folder"``, ``data.path=/my/photos``.

Any tree of JPEG, PNG, WebP, BMP or TIFF files (other files are ignored). Layout:

* Splits: ``train/`` and ``test/`` subfolders of the root when both exist; otherwise a seeded
  ``data.test_fraction`` of the images (per class when there are classes) is held out for test.
* Classes (``label``): the first-level subfolder names (below ``train/``/``test/`` if present),
  when every image lies in such a subfolder and there are at least two; classes are numbered
  in sorted name order. Images directly in the root mean no labels.

The folder is prepared once, like every dataset, by a tensorflow-datasets builder to
ArrayRecord (``FolderImages``), under ``<data_dir>/folder_images/<fingerprint>/``. The
fingerprint hashes the file list (paths, sizes, modification times) and every setting that
changes the stored images, so a changed folder or setting is prepared anew and an unchanged
one never is. Each image is converted as ``convert.square`` says.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import warnings

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from vaegan_jax.data import convert

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class FolderError(ValueError):
  """The image folder cannot be made into a dataset; the message names the file or setting and the fix."""


@dataclasses.dataclass(frozen=True)
class Listing:
  """What a folder holds, as scanned.

  Attributes:
    root: the absolute folder path.
    files: (split, relative path, class index or -1, size in bytes, mtime in ns) per image,
      sorted by path; split is "train" or "test".
    class_names: sorted first-level subfolder names, or () without labels.
    state: a hash of every image file under ``root`` (``folder_state``), to notice changes.
  """

  root: str
  files: tuple[tuple[str, str, int, int, int], ...]
  class_names: tuple[str, ...]
  state: str

  def fingerprint(self, settings: dict) -> str:
    text = json.dumps([self.root, self.files, self.class_names, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inside(path: str, root: str) -> bool:
  return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _images_under(folder: str) -> list[tuple[str, int, int]]:
  """(relative path, size, mtime_ns) of every image file under ``folder``, sorted.

  Symbolic links are followed only while they stay inside the folder's real path, and each
  real directory is visited once (a link to a parent or a loop cannot repeat the tree or hang
  the scan); links leading outside are left out, with a warning. A file that cannot be
  examined (a dangling link, no permission) is listed with size and time -1, so that the
  readability check names it or, with ``data.skip_unreadable``, skips it.
  """
  real_root = os.path.realpath(folder)
  found, seen, outside = [], set(), []
  for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
    real = os.path.realpath(dirpath)
    if real in seen or not _inside(real, real_root):
      dirnames[:] = []
      if not _inside(real, real_root):
        outside.append(dirpath)
      continue
    seen.add(real)
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for name in filenames:
      if name.lower().endswith(SUFFIXES) and not name.startswith("."):
        path = os.path.join(dirpath, name)
        target = os.path.realpath(path)
        if not _inside(target, real_root):
          outside.append(path)
          continue
        try:
          stat = os.stat(path)
          size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
          size, mtime = -1, -1
        found.append((os.path.relpath(path, folder), size, mtime))
  if outside:
    logging.warning("left out %d link(s) under %s that lead outside it: %s", len(outside), folder,
                    "; ".join(outside[:5]))
  return sorted(found)


def folder_state(images: list[tuple[str, int, int]]) -> str:
  """A hash of ``_images_under``'s list: changes when any image is added, removed or modified."""
  return hashlib.sha256(json.dumps(images).encode()).hexdigest()


def _classes(paths: list[str]) -> tuple[str, ...]:
  """Sorted first-level folder names if every path has one and there are >= 2, else ()."""
  if any(os.sep not in p for p in paths):
    return ()
  names = sorted({p.split(os.sep, 1)[0] for p in paths})
  return tuple(names) if len(names) >= 2 else ()


def scan(root: str, test_fraction: float, split_seed: int) -> Listing:
  """Lists the images under ``root`` and assigns splits and classes (see the module docstring).

  Args:
    root: the image folder (``data.path``).
    test_fraction: in (0, 1); share held out for test when there are no train/ and test/ folders.
    split_seed: seed of that draw.

  Raises:
    FolderError: ``root`` is not a folder, holds no image, or a class has a single image
      (it could not be in both splits).
  """
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise FolderError(f"data.path={root} is not a folder: set --config.data.path to the folder of your images")
  everything = _images_under(root)
  if not everything:
    raise FolderError(f"{root} holds no image file ({', '.join(SUFFIXES)}, in any subfolder): "
                      "set --config.data.path to the folder of your images")
  if all(os.path.isdir(os.path.join(root, s)) for s in ("train", "test")):
    parts = {s: [(p.split(os.sep, 1)[1], size, mtime) for p, size, mtime in everything if p.startswith(s + os.sep)]
             for s in ("train", "test")}
    for split, images in parts.items():
      if not images:
        raise FolderError(f"{os.path.join(root, split)} holds no image ({', '.join(SUFFIXES)}): add images or "
                          "remove the train/ and test/ folders to hold out data.test_fraction instead")
    names = _classes([p for images in parts.values() for p, _, _ in images])
    files = [(split, os.path.join(split, p), names.index(p.split(os.sep, 1)[0]) if names else -1, size, mtime)
             for split, images in parts.items() for p, size, mtime in images]
  else:
    names = _classes([p for p, _, _ in everything])
    labels = np.asarray([names.index(p.split(os.sep, 1)[0]) if names else -1 for p, _, _ in everything])
    test = np.zeros(len(everything), bool)
    rng = np.random.default_rng(split_seed)
    for label in np.unique(labels):
      members = np.flatnonzero(labels == label)
      if len(members) < 2:
        where = os.path.join(root, names[label]) if names else root
        raise FolderError(f"{where} holds a single image, so it cannot be in both the train and the test "
                          "split: add images to it, or move it out of the folder")
      count = min(len(members) - 1, max(1, round(test_fraction * len(members))))
      test[rng.choice(members, count, replace=False)] = True
    files = [("test" if t else "train", p, int(label), size, mtime)
             for (p, size, mtime), t, label in zip(everything, test, labels)]
  return Listing(root, tuple(files), names, folder_state(everything))


def _open(path: str) -> Image.Image:
  """Decodes a whole image file (raises on unreadable or truncated files; TIFF/PNG warnings as errors)."""
  with warnings.catch_warnings():
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    image = Image.open(path)
    image.load()
  return image


class FolderImages(tfds.core.GeneratorBasedBuilder):
  """A folder of images prepared to ArrayRecord; one builder config per folder fingerprint.

  Features: ``image`` u8[size, size, channels]; ``label`` (class index, names in
  ``info.features["label"].names``) when the folder has classes.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Images converted by vaegan_jax.data.convert.square."}

  def __init__(self, *, listing: Listing, spec: convert.ImageSpec, skip_unreadable: bool, **kwargs):
    self._listing, self._spec, self._skip_unreadable = listing, spec, skip_unreadable
    settings = {**dataclasses.asdict(spec), "skip_unreadable": skip_unreadable}
    config = tfds.core.BuilderConfig(name=listing.fingerprint(settings), description=listing.root)
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self._spec
    features = {"image": tfds.features.Tensor(shape=(s.size, s.size, s.channels), dtype=np.uint8)}
    if self._listing.class_names:
      features["label"] = tfds.features.ClassLabel(names=list(self._listing.class_names))
    return tfds.core.DatasetInfo(
        builder=self, description=f"The images under {self._listing.root}, converted to {s}.", disable_shuffling=True,
        features=tfds.features.FeaturesDict(features),
        metadata=tfds.core.MetadataDict(root=self._listing.root, class_names=list(self._listing.class_names)))

  def _split_generators(self, dl_manager):
    del dl_manager
    self._check_readable()
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _check_readable(self) -> None:
    """Opens every file once before anything is written: unreadable ones are named (or skipped)."""
    bad = {}
    for _, path, _, _, _ in self._listing.files:
      try:
        _open(os.path.join(self._listing.root, path)).close()
      except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        bad[path] = f"{path} ({type(e).__name__}: {str(e)[:80]})"
    said = list(bad.values())
    if bad and not self._skip_unreadable:
      shown = "; ".join(said[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
      raise FolderError(f"{len(bad)} image file(s) under {self._listing.root} cannot be read: {shown}. Fix or "
                        "remove them, or set --config.data.skip_unreadable=True to skip them")
    if bad:
      logging.warning("skipping %d unreadable image file(s) under %s (data.skip_unreadable=True): %s",
                      len(bad), self._listing.root, "; ".join(said[:5]))
    self._unreadable = set(bad)

  def _generate_examples(self, split: str):
    notes = collections.Counter()
    listing = self._listing
    for file_split, path, label, _, _ in listing.files:
      if file_split != split or path in self._unreadable:
        continue
      with _open(os.path.join(listing.root, path)) as image:
        example = {"image": convert.square(image, self._spec, os.path.join(listing.root, path), notes)}
      if listing.class_names:
        example["label"] = label
      yield path, example
    if notes:
      logging.warning("%s split of %s: converted %s to %s", split, listing.root,
                      ", ".join(f"{n} {kind} image(s)" for kind, n in sorted(notes.items())),
                      "RGB" if self._spec.channels == 3 else "grey")
    if folder_state(_images_under(listing.root)) != listing.state:
      raise FolderError(f"{listing.root} changed while it was being prepared (files added, removed or modified); "
                        "nothing was kept: run again once the folder is stable")


def builder(config: ml_collections.ConfigDict, data_dir: str | None) -> FolderImages:
  """The ``FolderImages`` builder of ``config.data.path`` with the config's image settings.

  Raises:
    FolderError: as ``scan``.
  """
  listing = scan(config.data.path, config.data.test_fraction, config.data.split_seed)
  return FolderImages(listing=listing, spec=convert.ImageSpec.from_config(config),
                      skip_unreadable=bool(config.data.skip_unreadable), data_dir=data_dir,
                      file_format="array_record")
