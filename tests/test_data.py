"""Input pipeline: project builders, seeded order, exact resume, clear errors."""

import numpy as np
import pytest

from tests.conftest import load_config, shared_data_dir
from vaegan_jax import data
from vaegan_jax.data import pipeline


def test_embedded_mnist5k_is_real_digits(smoke_config):
  info = data.dataset_info(smoke_config)
  assert (info.image_shape, info.num_train, info.num_eval) == ((28, 28, 1), 4500, 500)
  test = data.eval_images(smoke_config, 500)
  assert test["image"].dtype == np.uint8 and np.bincount(test["label"]).tolist() == [50] * 10
  # Real MNIST: mostly background, mean intensity close to the known 0.13.
  assert 0.08 < test["image"].mean() / 255 < 0.2


def test_iterator_is_seeded_and_resumes_exactly(smoke_config):
  it = data.train_iterator(smoke_config, 16, seed=3)
  first = [next(it)["image"] for _ in range(5)]
  state = it.get_state()
  rest = [next(it)["image"] for _ in range(80)]   # crosses an epoch boundary (281 batches)
  again = data.train_iterator(smoke_config, 16, seed=3)
  np.testing.assert_array_equal(next(again)["image"], first[0])
  resumed = data.train_iterator(smoke_config, 16, seed=3, state=state)
  for want in rest:
    np.testing.assert_array_equal(next(resumed)["image"], want)
  other = data.train_iterator(smoke_config, 16, seed=4)
  assert not np.array_equal(next(other)["image"], first[0])


def test_each_epoch_visits_every_example_once(smoke_config):
  ds = pipeline.train_dataset(smoke_config, 500, seed=0)  # 9 batches of 500 = 4500
  epoch0 = np.concatenate([ds[i]["image"] for i in range(9)]).reshape(4500, -1)
  epoch1 = np.concatenate([ds[i]["image"] for i in range(9, 18)]).reshape(4500, -1)
  key = lambda a: sorted(map(bytes, a))
  assert key(epoch0) == key(epoch1)          # same examples...
  assert not np.array_equal(epoch0, epoch1)  # ...in a new order


def test_missing_celeba_names_config_key_and_env_var(tfds_dir, monkeypatch, tmp_path):
  monkeypatch.delenv("VAEGAN_DATA_DIR", raising=False)
  c = load_config("vaegan_celeba")
  c.data.data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match=r"config.data.manual_dir.*VAEGAN_DATA_DIR"):
    data.dataset_info(c)


@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is not here")
def test_celeba64_subset(tfds_dir, monkeypatch):
  monkeypatch.setenv("VAEGAN_DATA_DIR", str(shared_data_dir()))
  c = load_config("vaegan_celeba")
  c.data.data_dir = tfds_dir
  info = data.dataset_info(c)
  assert (info.image_shape, info.num_train, info.num_eval) == ((64, 64, 3), 4560, 660)
  assert info.attribute_names[15] == "Eyeglasses" and len(info.attribute_names) == 40
  batch = next(data.train_iterator(c, 8, seed=0))
  assert batch["image"].shape == (8, 64, 64, 3) and batch["attributes"].shape == (8, 40)
  # The official partition is identity-disjoint here: 152 train identities, 22 test.
  test_ids = set(data.eval_images(c, 660)["identity"].tolist())
  assert len(test_ids) == 22
