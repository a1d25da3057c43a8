"""Your own images (data.name=folder), tfds catalog datasets (tfds:<name>) and the IDX builders."""

import gzip
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.conftest import load_config, shared_data_dir
from vaegan_jax import config as config_lib
from vaegan_jax import data
from vaegan_jax.data import builders, catalog, convert, folder


def _save(path: pathlib.Path, array: np.ndarray, mode: str | None = None, **kwargs) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode).save(path, **kwargs)


def _solid(colour, size=(40, 30)) -> np.ndarray:
  return np.broadcast_to(np.asarray(colour, np.uint8), (size[1], size[0], 3)).copy()


def _config(root, tfds_dir, **data_settings):
  c = load_config("vaegan_mnist")   # any config; the folder sets the shape
  c.data.name, c.data.path, c.data.data_dir = "folder", str(root), str(tfds_dir)
  c.data.image_size, c.data.channels = 16, 3
  for key, value in data_settings.items():
    c.data[key] = value
  return c


def _prepared(tfds_dir) -> list[str]:
  """The prepared (finished) folder datasets under a tfds data_dir."""
  return sorted(str(p.parent) for p in pathlib.Path(tfds_dir).glob("folder_images/*/1.0.0/dataset_info.json"))


def _two_classes(root: pathlib.Path, per_class: int = 10) -> None:
  for i in range(per_class):
    _save(root / "red" / f"{i}.png", _solid((250, 10, 10)))
    _save(root / "blue" / f"b{i}.jpg", _solid((10, 10, 250)), quality=95)
  (root / "notes.txt").write_text("not an image")


def test_folder_with_class_subfolders_prepares_labels_and_a_stratified_test_split(tmp_path):
  root = tmp_path / "photos"
  _two_classes(root)
  c = _config(root, tmp_path / "tfds", test_fraction=0.2)
  config_lib.validate(c)
  info = data.dataset_info(c)
  assert info.image_shape == (16, 16, 3) and (info.num_train, info.num_eval) == (16, 4)
  test = data.split_arrays(c, "test")
  train = data.split_arrays(c, "train")
  assert sorted(test["label"].tolist()) == [0, 0, 1, 1]    # 20% of each class; classes in name order: blue, red
  for arrays in (train, test):
    blue = arrays["label"] == 0
    # Each image is its class's colour (the JPEG within a few levels): labels follow the folders.
    assert np.all(np.abs(arrays["image"][blue].astype(int) - [10, 10, 250]) <= 4)
    assert np.all(arrays["image"][~blue] == [250, 10, 10])
  # Same files, same settings: nothing is prepared again; a changed setting prepares anew.
  data.dataset_info(c)
  assert len(_prepared(tmp_path / "tfds")) == 1
  c.data.split_seed = 1
  data.dataset_info(c)
  assert len(_prepared(tmp_path / "tfds")) == 2


def test_folder_centre_crop_box_resize_and_train_test_subfolders(tmp_path):
  root = tmp_path / "tree"
  # 60x40: the centre square is columns 10..49, green; the 10 columns either side are red.
  image = _solid((200, 0, 0), (60, 40))
  image[:, 10:50] = (0, 200, 0)
  for split in ("train", "test"):
    _save(root / split / "a.png", image)
    _save(root / split / "nested" / "deeper" / "b.png", image)
  c = _config(root, tmp_path / "tfds")
  info = data.dataset_info(c)
  assert (info.num_train, info.num_eval) == (2, 2)      # train/ and test/ decide the split
  x = data.split_arrays(c, "test")
  assert "label" not in x                                # an image at the top level: no classes
  assert np.all(x["image"] == [0, 200, 0])               # the centre square only
  # A crop box of the red left margin, upscaled (10 px < 16 px) because data.upscale is on.
  c.data.crop, c.data.upscale = (0, 0, 10, 10), True
  assert np.all(data.split_arrays(c, "test")["image"] == [200, 0, 0])
  # Antialiased resize: the same as Pillow's Lanczos resize of the centre square.
  stripes = np.zeros((64, 64), np.uint8)
  stripes[:, ::2] = 255
  spec = convert.ImageSpec(16, 1)
  expected = np.asarray(Image.fromarray(stripes, "L").resize((16, 16), Image.Resampling.LANCZOS))
  np.testing.assert_array_equal(convert.square(Image.fromarray(stripes, "L"), spec, "stripes")[..., 0], expected)
  assert abs(float(expected.mean()) - 127.5) < 3         # not aliased to all-black or all-white columns


def test_modes_are_converted_and_said_once(tmp_path, caplog):
  root = tmp_path / "modes"
  rgba = np.zeros((20, 20, 4), np.uint8)                 # fully transparent: white after compositing
  _save(root / "rgba.png", rgba, "RGBA")
  _save(root / "palette.png", np.full((20, 20), 3, np.uint8), "L")
  Image.open(root / "palette.png").convert("P").save(root / "palette.png")
  _save(root / "wide.png", np.full((20, 20), 65535, np.uint16))   # Pillow: mode I;16
  Image.fromarray(_solid((255, 0, 0), (20, 20))).convert("CMYK").save(root / "cmyk.tiff")
  c = _config(root, tmp_path / "tfds", test_fraction=0.25)
  with caplog.at_level("WARNING"):
    data.dataset_info(c)
  x = np.concatenate([data.split_arrays(c, s)["image"] for s in ("train", "test")])
  assert x.shape == (4, 16, 16, 3)
  colours = sorted(tuple(int(v) for v in im[8, 8]) for im in x)
  assert colours == sorted([(255, 255, 255), (3, 3, 3), (255, 255, 255), (255, 0, 0)])
  said = " ".join(r.getMessage() for r in caplog.records if "converted" in r.getMessage())
  for kind in ("RGBA", "palette", "16-bit", "CMYK"):
    assert kind in said


@pytest.mark.parametrize("case", ["empty", "no_images", "single_image_class", "too_small", "unreadable",
                                  "not_a_folder"])
def test_bad_folders_are_named_errors_and_write_nothing(tmp_path, case):
  root = tmp_path / "bad"
  root.mkdir()
  match = {"empty": "holds no image", "no_images": "holds no image", "single_image_class": "single image",
           "too_small": r"small\.png.*smaller than data.image_size=16.*upscale", "not_a_folder": "is not a folder",
           "unreadable": r"1 image file\(s\).*broken\.jpg.*skip_unreadable"}[case]
  if case == "no_images":
    (root / "readme.txt").write_text("x")
  elif case == "single_image_class":
    _two_classes(root, 3)
    _save(root / "green" / "only.png", _solid((0, 250, 0)))
  elif case == "too_small":
    _two_classes(root, 3)
    _save(root / "red" / "small.png", _solid((250, 10, 10), (12, 12)))
  elif case == "unreadable":
    _two_classes(root, 3)
    good = (root / "blue" / "b0.jpg").read_bytes()
    (root / "blue" / "broken.jpg").write_bytes(good[:len(good) // 3])
  elif case == "not_a_folder":
    root = tmp_path / "missing"
  c = _config(root, tmp_path / "tfds")
  with pytest.raises(ValueError, match=match):
    data.dataset_info(c)
  assert _prepared(tmp_path / "tfds") == []
  assert not list((tmp_path / "tfds").glob("folder_images/*/*incomplete*"))
  if case == "unreadable":                             # the switch skips it, and counts it
    c.data.skip_unreadable = True
    info = data.dataset_info(c)
    assert info.num_train + info.num_eval == 6


def test_links_stay_inside_the_folder_visit_each_directory_once_and_dangling_ones_are_named(tmp_path):
  """A link to a parent once repeated the tree (3 images became 283), two such links hung the
  scan, and a dangling link raised a bare FileNotFoundError that skip_unreadable did not skip."""
  root = tmp_path / "photos"
  _two_classes(root, 3)
  outside = tmp_path / "elsewhere"
  _save(outside / "secret.png", _solid((0, 0, 0)))
  (root / "red" / "up").symlink_to(root)                    # a loop through the parent
  (root / "blue" / "again").symlink_to(root / "red")        # a second way into red/
  (root / "red" / "out").symlink_to(outside)                # leaves the folder
  (root / "red" / "secret.png").symlink_to(outside / "secret.png")
  (root / "blue" / "gone.png").symlink_to(root / "blue" / "deleted.png")   # dangling, inside
  listing = folder.scan(str(root), 0.2, 0)
  paths = sorted(p for _, p, _, _, _ in listing.files)
  assert len(paths) == 7 and os.path.join("blue", "gone.png") in paths    # 6 images, once each, and the dangling one
  assert not any("secret" in p or "elsewhere" in p for p in paths)
  c = _config(root, tmp_path / "tfds")
  with pytest.raises(ValueError, match=r"1 image file\(s\).*gone\.png.*skip_unreadable"):
    data.dataset_info(c)
  c.data.skip_unreadable = True
  info = data.dataset_info(c)
  assert info.num_train + info.num_eval == 6


def test_a_folder_that_changes_while_prepared_keeps_nothing(tmp_path, monkeypatch):
  root = tmp_path / "moving"
  _two_classes(root, 3)
  real = convert.square

  def square_and_add_a_file(*args, **kwargs):
    _save(root / "red" / "late.png", _solid((250, 10, 10)))
    return real(*args, **kwargs)

  monkeypatch.setattr(convert, "square", square_and_add_a_file)
  with pytest.raises(folder.FolderError, match="changed while it was being prepared"):
    data.dataset_info(_config(root, tmp_path / "tfds"))
  assert _prepared(tmp_path / "tfds") == []
  monkeypatch.setattr(convert, "square", real)
  info = data.dataset_info(_config(root, tmp_path / "tfds"))   # now stable: all 7 images
  assert info.num_train + info.num_eval == 7


def test_config_checks_folder_settings():
  c = load_config("vaegan_mnist")
  c.data.name = "folder"
  with pytest.raises(ValueError, match="data.path"):
    config_lib.validate(c)
  c.data.path, c.data.channels = "/x", 2
  with pytest.raises(ValueError, match="data.channels"):
    config_lib.validate(c)
  c.data.channels, c.data.name = 3, "cifar10"
  with pytest.raises(ValueError, match="tfds:<name>"):
    config_lib.validate(c)


def _tfds_config(tmp_path, name="tfds:cifar10", **settings):
  c = load_config("vaegan_mnist")
  c.data.name, c.data.data_dir, c.data.image_size, c.data.channels = name, str(tmp_path / "tfds"), 16, 1
  for key, value in settings.items():
    c.data[key] = value
  return c


def test_a_tfds_catalog_dataset_is_converted_offline_with_tfds_mock_data(tmp_path, monkeypatch):
  """tfds's mock_data stands in for the catalog dataset (random examples of its real features);
  the derived dataset is prepared and read for real."""
  real = {name: getattr(tfds.core.DatasetBuilder, name) for name in ("download_and_prepare", "as_data_source")}
  with tfds.testing.mock_data(num_examples=12):
    for name, method in real.items():               # mock only the catalog dataset, not ours
      monkeypatch.setattr(catalog.CatalogImages, name, method)
    source = tfds.builder("cifar10").as_data_source(split="test")
    c = _tfds_config(tmp_path)
    info = data.dataset_info(c)
    x = data.split_arrays(c, "test")
  assert info.image_shape == (16, 16, 1) and (info.num_train, info.num_eval) == (12, 12)
  expected = np.stack([convert.from_array(source[i]["image"], convert.ImageSpec(16, 1), "") for i in range(12)])
  np.testing.assert_array_equal(x["image"], expected)
  np.testing.assert_array_equal(x["label"], [source[i]["label"] for i in range(12)])


@pytest.mark.parametrize("setting,match", [({"name": "tfds:cifar01"}, "no dataset 'cifar01'.*cifar10"),
                                           ({"image_key": "picture"}, r"'picture' is not a feature.*'image'"),
                                           ({"label_key": "id"}, "not a class label")])
def test_bad_tfds_settings_are_named(tmp_path, setting, match):
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match=match):
      data.dataset_info(_tfds_config(tmp_path, **setting))


def _write_idx(path: pathlib.Path, array: np.ndarray) -> None:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_are_read_without_tensorflow(tmp_path):
  rng = np.random.default_rng(0)
  images, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
  _write_idx(tmp_path / "im.gz", images)
  _write_idx(tmp_path / "lb.gz", labels)
  np.testing.assert_array_equal(builders.read_idx(str(tmp_path / "im.gz")), images)
  np.testing.assert_array_equal(builders.read_idx(str(tmp_path / "lb.gz")), labels)
  (tmp_path / "short.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + (9).to_bytes(4, "big") + b"\1\2"))
  with pytest.raises(ValueError, match="holds 2 bytes"):
    builders.read_idx(str(tmp_path / "short.gz"))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_and_fashion_mnist_prepare_from_idx_files(name, tmp_path):
  shared = shared_data_dir()
  if shared is None:
    pytest.skip("../shared/data is not here (no offline MNIST files)")
  c = load_config("vaegan_mnist")
  c.data.name, c.data.data_dir, c.data.manual_dir = name, str(tmp_path / "tfds"), str(shared / name)
  info = data.dataset_info(c)
  assert (info.image_shape, info.num_train, info.num_eval) == ((28, 28, 1), 60000, 10000)
  test = data.eval_images(c, 10000)
  raw = builders.read_idx(os.path.join(shared, name, "t10k-images-idx3-ubyte.gz"))
  np.testing.assert_array_equal(test["image"][..., 0], raw)
  np.testing.assert_array_equal(test["label"], builders.read_idx(os.path.join(shared, name, "t10k-labels-idx1-ubyte.gz")))


@pytest.mark.parametrize("name", ["default", "aae_mnist"])
def test_train_and_evaluate_on_an_unlabelled_folder(name, tfds_dir, tmp_path):
  """A smoke VAE/GAN (and AAE) on 60 real digits saved as PNG files in one flat folder: it
  trains, and eval.py scores it with the rotation classifier (no labels needed)."""
  from vaegan_jax import evaluators, trainer  # pylint: disable=import-outside-toplevel
  c = load_config(name)
  c.data.data_dir = tfds_dir
  digits = data.split_arrays(c, "train", 60)["image"]
  for i, digit in enumerate(digits):
    _save(tmp_path / "digits" / f"{i:03d}.png", digit[..., 0], "L")
  c.data.name, c.data.path, c.data.image_size, c.data.channels = "folder", str(tmp_path / "digits"), 28, 1
  c.data.data_dir, c.data.train_split, c.data.validation_split = str(tmp_path / "tfds"), "train", ""
  trainer.train_and_evaluate(c, str(tmp_path / "run"))
  results, _ = evaluators.evaluate(str(tmp_path / "run"))
  assert results["dataset"] == "folder" and results["num_test"] == 6
  assert results["classifier"]["output_names"] == ["0", "90", "180", "270"]
  assert np.isfinite(results["samples/frechet_distance"]) and "reconstructions/label_accuracy" not in results


def test_ccvae_labels_name_a_folders_classes(tfds_dir, tmp_path):
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  from vaegan_jax.data import supervision  # pylint: disable=import-outside-toplevel
  y = supervision.label_matrix({"label": np.array([0, 1, 1])}, ["dogs", "0"], (), "folder", ("cats", "dogs"))
  np.testing.assert_array_equal(y, [[0, 1], [1, 0], [1, 0]])   # by name, or by number
  with pytest.raises(ValueError, match=r"\['birds'\] are not classes of folder \(its classes are \['cats', 'dogs'\]"):
    supervision.label_matrix({"label": np.array([0, 1])}, ["birds"], (), "folder", ("cats", "dogs"))
  # A CCVAE trains on a folder whose subfolders are its classes, its labels given by name.
  c = load_config("ccvae_mnist")
  c.data.data_dir = tfds_dir
  digits = data.split_arrays(c, "train", 80)
  for i, (digit, label) in enumerate(zip(digits["image"], digits["label"])):
    _save(tmp_path / "digits" / ("low" if label < 5 else "high") / f"{i:03d}.png", digit[..., 0], "L")
  c.data.name, c.data.path, c.data.image_size, c.data.channels = "folder", str(tmp_path / "digits"), 28, 1
  c.data.data_dir, c.ccvae.labels, c.ccvae.walk_pairs = str(tmp_path / "tfds"), ("high", "low"), (("high", "low"),)
  state = trainer.train_and_evaluate(c, str(tmp_path / "run"))
  assert data.dataset_info(c).class_names == ("high", "low") and int(state.step) == c.train.num_steps
