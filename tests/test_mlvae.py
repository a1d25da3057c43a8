"""ML-VAE: the product of Gaussians, the group ELBO, the group batches, the probes, train + eval.

The 8-device equality of the step is in test_parallel.py (one subprocess for every method).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_config, shared_data_dir
from vaegan_jax import evaluators, metrics, parallel, trainer
from vaegan_jax.config import validate
from vaegan_jax.data import groups, pipeline
from vaegan_jax.methods import mlvae


# --- Product of Gaussians ---------------------------------------------------------------------------

def _product_numpy(mu, logvar):
  """Precision form, float64: Sigma_G^-1 = sum Sigma_i^-1, mu_G = Sigma_G sum Sigma_i^-1 mu_i (axis 1)."""
  precision = np.exp(-logvar.astype(np.float64))
  var = 1.0 / precision.sum(1)
  return var * (precision * mu).sum(1), np.log(var)


def test_product_of_gaussians_matches_the_precision_form(rng):
  mu = rng.normal(size=(5, 7, 3)).astype(np.float32)
  logvar = rng.uniform(-4, 3, size=(5, 7, 3)).astype(np.float32)
  got_mu, got_logvar = mlvae.product_of_gaussians(jnp.asarray(mu), jnp.asarray(logvar), axis=1)
  want_mu, want_logvar = _product_numpy(mu, logvar)
  np.testing.assert_allclose(got_mu, want_mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_logvar, want_logvar, rtol=1e-5, atol=1e-6)


def test_product_of_one_member_is_that_member_and_of_identical_members_shrinks_the_variance(rng):
  mu = rng.normal(size=(4, 1, 6)).astype(np.float32)
  logvar = rng.normal(size=(4, 1, 6)).astype(np.float32)
  one_mu, one_logvar = mlvae.product_of_gaussians(jnp.asarray(mu), jnp.asarray(logvar))
  np.testing.assert_allclose(one_mu, mu[:, 0], rtol=1e-6)
  np.testing.assert_allclose(one_logvar, logvar[:, 0], rtol=1e-6)
  n = 9
  same_mu, same_logvar = mlvae.product_of_gaussians(jnp.asarray(np.repeat(mu, n, 1)), jnp.asarray(np.repeat(logvar, n, 1)))
  np.testing.assert_allclose(same_mu, mu[:, 0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(same_logvar, logvar[:, 0] - np.log(n), rtol=1e-5, atol=1e-5)


def test_product_of_gaussians_is_stable_at_extreme_log_variances():
  mu = np.array([[[1.0], [5.0]]], np.float32)
  logvar = np.array([[[-300.0], [300.0]]], np.float32)   # precisions e^300 and e^-300 overflow f32
  got_mu, got_logvar = mlvae.product_of_gaussians(jnp.asarray(mu), jnp.asarray(logvar))
  np.testing.assert_allclose(got_mu, [[1.0]], rtol=1e-6)       # the certain member decides
  np.testing.assert_allclose(got_logvar, [[-300.0]], rtol=1e-6)
  grads = jax.grad(lambda lv: jnp.sum(mlvae.product_of_gaussians(jnp.asarray(mu), lv)[1]))(jnp.asarray(logvar))
  assert np.all(np.isfinite(grads))
  with pytest.raises(ValueError, match="same shape"):
    mlvae.product_of_gaussians(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 5)))


# --- The group ELBO --------------------------------------------------------------------------------

def _setup(groups_, k, llike="bernoulli"):
  rng = np.random.default_rng(0)
  c = load_config("mlvae_mnist")
  c.loss.llike, c.loss.pixel_log_scale = llike, 0.3466   # pixel: the port's squared error (variance 2 on [-1, 1])
  c.mlvae.group_size = k
  c.train.batch_size = groups_ * k
  validate(c)
  models = mlvae.build_models(c, (28, 28, 1))
  state = mlvae.create_train_state(jax.random.key(0), c, models, mlvae.make_optimizers(c, 10))
  images = rng.integers(0, 256, (groups_, k, 28, 28, 1), dtype=np.uint8)
  return c, models, state, images


def _elbo_numpy(c, models, state, images, key):
  """The negative group ELBO per image, recomputed outside ``compute_losses`` with the same noise."""
  x = images.astype(np.float64) / 127.5 - 1.0
  g, k = images.shape[:2]
  mu, logvar = (np.asarray(a, np.float64) for a in models["encoder"].apply(
      {"params": state.params["encoder"]}, jnp.asarray(x.reshape(g * k, 28, 28, 1), jnp.float32), train=False))
  s_dim = c.mlvae.style_dim
  s_mu, s_logvar = mu[:, :s_dim].reshape(g, k, -1), logvar[:, :s_dim].reshape(g, k, -1)
  c_mu, c_logvar = _product_numpy(mu[:, s_dim:].reshape(g, k, -1), logvar[:, s_dim:].reshape(g, k, -1))
  style_key, content_key = jax.random.split(key)
  s = s_mu + np.exp(0.5 * s_logvar) * np.asarray(jax.random.normal(style_key, s_mu.shape))
  content = c_mu + np.exp(0.5 * c_logvar) * np.asarray(jax.random.normal(content_key, c_mu.shape))
  z = np.concatenate([s, np.repeat(content[:, None], k, 1)], -1).reshape(g * k, -1)
  logits = np.asarray(models["decoder"].apply({"params": state.params["decoder"]}, jnp.asarray(z, jnp.float32),
                                              train=False), np.float64).reshape(g, k, -1)
  target = ((x + 1) / 2).reshape(g, k, -1)
  if c.loss.llike == "bernoulli":
    nll = np.sum(np.logaddexp(0, logits) - target * logits, -1)                  # [g, k]
  else:   # Gaussian around the sigmoid decoder's mean, mapped to [-1, 1]
    scale = np.exp(c.loss.pixel_log_scale)
    mean = 2 / (1 + np.exp(-logits)) - 1
    nll = np.sum(0.5 * ((x.reshape(g, k, -1) - mean) / scale) ** 2 + np.log(scale) + 0.5 * np.log(2 * np.pi), -1)
  kl = lambda m, lv: 0.5 * np.sum(np.exp(lv) + m ** 2 - 1 - lv, -1)  # noqa: E731
  per_group = nll.sum(1) + kl(s_mu, s_logvar).sum(1) + kl(c_mu, c_logvar)      # content KL once per group
  return np.mean(per_group / k), kl(c_mu, c_logvar).mean()


@pytest.mark.parametrize("k,llike", [(1, "bernoulli"), (5, "bernoulli"), (5, "pixel")])
def test_group_elbo_counts_the_content_kl_once_per_group(k, llike):
  c, models, state, images = _setup(3, k, llike)
  key = jax.random.key(7)
  losses_fn = jax.jit(lambda p, x, rng: mlvae.compute_losses(models, c, p, state.batch_stats, x, rng))
  loss, (terms, _) = losses_fn(state.params, jnp.asarray(images, jnp.float32) / 127.5 - 1.0, key)
  want_loss, want_kl_content = _elbo_numpy(c, models, state, images, key)
  np.testing.assert_allclose(float(loss), want_loss, rtol=2e-5)
  np.testing.assert_allclose(float(terms["kl_content"]), want_kl_content, rtol=2e-5)
  np.testing.assert_allclose(float(terms["elbo"]), -want_loss, rtol=2e-5)
  # the per-image loss shares one content KL among the K members
  np.testing.assert_allclose(float(loss), float(terms["llike"] + terms["kl_style"] + terms["kl_content"] / k),
                             rtol=1e-6)


def test_train_step_moves_both_networks_and_skips_a_nan_step():
  c, models, state, images = _setup(2, 4)
  step = jax.jit(mlvae.make_train_step(c, models, mlvae.make_optimizers(c, 10)))
  new, m = step(state, {"image": images, "group": np.arange(2)})
  for name in mlvae.NETWORKS:
    before, after = jax.tree.leaves(state.params[name]), jax.tree.leaves(new.params[name])
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), name
  assert float(m["train/nonfinite"]) == 0 and np.isfinite(float(m["train/elbo"]))
  poisoned = new.replace(params={**new.params, "decoder": jax.tree.map(lambda p: p * np.nan, new.params["decoder"])})
  skipped, m = step(poisoned, {"image": images, "group": np.arange(2)})
  assert float(m["train/nonfinite"]) == 1 and int(skipped.step) == int(new.step) + 1
  np.testing.assert_array_equal(jax.tree.leaves(skipped.params["encoder"])[0], jax.tree.leaves(new.params["encoder"])[0])


# --- Group batches --------------------------------------------------------------------------------

def test_epoch_groups_are_whole_disjoint_and_seeded():
  values = np.repeat(np.arange(4), [9, 8, 3, 12])
  got = groups.epoch_groups(values, 4, seed=3, epoch=0)
  assert got.shape == (2 + 2 + 0 + 3, 4) == (groups.groups_per_epoch(values, 4), 4)
  assert len(np.unique(got)) == got.size                          # no example twice in an epoch
  assert all(len(set(values[row])) == 1 for row in got)           # every member shares the value
  np.testing.assert_array_equal(got, groups.epoch_groups(values, 4, seed=3, epoch=0))
  assert not np.array_equal(got, groups.epoch_groups(values, 4, seed=3, epoch=1))
  with pytest.raises(ValueError, match="group_size"):
    groups.epoch_groups(values, 13, seed=0, epoch=0)


def test_group_batches_hold_whole_groups_and_resume_exactly(tfds_dir):
  c = load_config("mlvae_mnist")
  c.data.data_dir = tfds_dir
  ds = groups.group_dataset(c, 16, seed=0)                        # 4 groups of 4 digits
  labels = pipeline.split_arrays(c, c.data.train_split)["label"]
  first = ds[0]
  assert first["image"].shape == (4, 4, 28, 28, 1) and first["image"].dtype == np.uint8
  steps_per_epoch = groups.groups_per_epoch(labels, 4) // 4
  epoch = np.concatenate([ds[i]["image"].reshape(16, -1) for i in range(steps_per_epoch)])
  assert len(np.unique(epoch, axis=0)) > 0.99 * len(epoch)       # (mnist5k has a few duplicate digits)
  it = pipeline.train_iterator(c, 16, seed=0, dataset=groups.group_dataset)
  for _ in range(3):
    next(it)
  saved = it.get_state()
  want = [next(it) for _ in range(2)]
  resumed = pipeline.train_iterator(c, 16, seed=0, state=saved, dataset=groups.group_dataset)
  for w in want:
    got = next(resumed)
    np.testing.assert_array_equal(got["image"], w["image"])
    np.testing.assert_array_equal(got["group"], w["group"])
  with pytest.raises(ValueError, match="multiple of 4"):
    groups.group_dataset(c, 18, seed=0)


@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is not here")
def test_celeba_groups_are_identities_and_test_identities_are_unseen(tfds_dir, monkeypatch):
  monkeypatch.setenv("VAEGAN_DATA_DIR", str(shared_data_dir()))
  c = load_config("mlvae_celeba", "")           # groups of 10
  c.data.data_dir = tfds_dir
  train = pipeline.split_arrays(c, c.data.train_split)
  test = pipeline.split_arrays(c, c.data.eval_split)
  train_ids, test_ids = groups.group_values(train, "identity", "celeba64"), groups.group_values(test, "identity", "celeba64")
  assert len(np.unique(train_ids)) == 152 and len(np.unique(test_ids)) == 22
  assert not np.isin(test_ids, train_ids).any()
  batch = groups.group_dataset(c, 40, seed=0)[0]                 # 10 faces of each of 4 identities
  assert batch["image"].shape == (4, 10, 64, 64, 3)
  for images, identity in zip(batch["image"], batch["group"]):
    rows = [np.flatnonzero((train["image"] == im).all(axis=(1, 2, 3)))[0] for im in images]
    assert set(train_ids[rows]) == {identity}


def test_config_errors_name_the_fix():
  c = load_config("mlvae_mnist", "")
  c.train.batch_size = 250
  with pytest.raises(ValueError, match="multiple of 32"):
    validate(c)
  c = load_config("mlvae_mnist")
  c.mlvae.networks, c.loss.llike = "conv", "bernoulli"
  with pytest.raises(ValueError, match="llike=pixel"):
    validate(c)
  c = load_config("mlvae_mnist")
  c.loss.llike = "laplace"
  with pytest.raises(ValueError, match="bernoulli or pixel"):
    validate(c)
  mesh = parallel.make_mesh(jax.devices()[:1])
  parallel.check_batch_size(12, mesh, group_size=4)   # 3 groups on one device


# --- Probes ------------------------------------------------------------------------------------------

def test_nearest_prototype_accuracy_matches_a_loop(rng):
  q, p = rng.normal(size=(40, 3)), rng.normal(size=(5, 3))
  q_labels, p_labels = rng.integers(0, 5, 40), np.array([4, 3, 2, 1, 0])
  want = np.mean([p_labels[np.argmin([np.linalg.norm(v - w) for w in p])] == lab for v, lab in zip(q, q_labels)])
  assert metrics.nearest_prototype_accuracy(q, q_labels, p, p_labels) == pytest.approx(want)


@pytest.mark.parametrize("probe", [metrics.linear_probe_accuracy, metrics.mlp_probe_accuracy])
def test_probes_read_an_informative_latent_and_not_a_noise_one(rng, probe):
  labels = np.repeat(np.arange(4), 100)
  # Class means 4 * e_k: Bayes accuracy 99.3%; over seeds 0-29 the MLP probe scored >= 0.935
  # and the linear one >= 0.975 (at 3 * e_k the MLP dipped to 0.855), noise <= 0.325.
  informative = np.eye(4)[labels] * 4 + rng.normal(size=(400, 4))
  noise = rng.normal(size=(400, 4))
  train, test = np.arange(400) % 2 == 0, np.arange(400) % 2 == 1
  assert probe(informative[train], labels[train], informative[test], labels[test]) > 0.9
  assert probe(noise[train], labels[train], noise[test], labels[test]) < 0.45
  with pytest.raises(ValueError, match="never occur in train"):
    probe(noise[:50], np.zeros(50, int) + np.arange(50) % 2, noise[:5], np.full(5, 3))


def test_mlp_probe_reads_a_label_that_is_not_linear_in_the_latent(rng):
  points = rng.normal(size=(2000, 2))
  inside = (np.linalg.norm(points, axis=1) < 1.1774).astype(int)   # the median radius: balanced classes
  train, test = slice(0, 1500), slice(1500, None)
  linear = metrics.linear_probe_accuracy(points[train], inside[train], points[test], inside[test])
  mlp = metrics.mlp_probe_accuracy(points[train], inside[train], points[test], inside[test])
  # Seeds 0-14: linear <= 0.656, MLP >= 0.966 (chance 0.5).
  assert linear < 0.7 and mlp > 0.9, (linear, mlp)


# --- End to end ------------------------------------------------------------------------------------

def test_train_and_evaluate_mlvae_smoke(tfds_dir, tmp_path):
  c = load_config("mlvae_mnist")
  c.data.data_dir = tfds_dir
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(c, str(workdir))
  last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert {"train/llike", "train/kl_style", "train/kl_content", "train/elbo"} <= set(last)
  results, folder = evaluators.evaluate(str(workdir))
  assert results["method"] == "mlvae"
  for key in ("probe/content_accuracy", "probe/style_accuracy", "probe/content_accuracy_grouped",
              "probe/style_accuracy_sampled", "probe/content_accuracy_grouped_sampled",
              "matching/content_accuracy_k1", "matching/content_accuracy_k10", "matching/style_accuracy_k10",
              "swap/content_follows_column", "swap/style_follows_row"):
    assert 0.0 <= results[key] <= 1.0, key
  assert results["matching/chance"] == pytest.approx(0.1) and results["matching/unseen_groups"] == 0.0
  assert results["swap/chance"] == pytest.approx(0.1)                # all 10 digits swapped pairwise
  assert results["loss/elbo_grouped"] < 0 and results["loss/elbo_single"] < 0
  # the same test images: only the content KL (shared by K members vs paid per image) and llike differ
  assert results["loss/kl_style_grouped"] == pytest.approx(results["loss/kl_style_single"], rel=1e-5)
  swap = Image.open(f"{folder}/swap.png")
  assert swap.size == (9 * 30 + 2, 9 * 30 + 2)                  # 8 x 8 swaps plus the source row and column
  assert Image.open(f"{folder}/accumulation.png").size[0] == 14 * 30 + 2
  for figure in ("samples", "reconstructions", "latent_content", "latent_style"):
    assert Image.open(f"{folder}/{figure}.png").size[0] > 100
