"""CCVAE: the objectives against NumPy, log-mean-exp, the diagonal classifier, the labelled
subset and its interleaving, the latent walk's range, train + eval."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from PIL import Image

from tests.conftest import load_config
from vaegan_jax import domain_classifier, evaluators, losses, trainer
from vaegan_jax.config import validate
from vaegan_jax.data import pipeline, supervision
from vaegan_jax.methods import ccvae
from vaegan_jax.models import CharacteristicClassifier, ConditionalPrior


# --- Loss pieces -----------------------------------------------------------------------------------

def test_log_mean_exp_matches_the_direct_form_and_survives_large_values(rng):
  x = rng.normal(size=(100, 7)).astype(np.float32) * 3
  np.testing.assert_allclose(losses.log_mean_exp(jnp.asarray(x), axis=0), np.log(np.mean(np.exp(x), 0)), rtol=1e-5)
  big = np.array([[-1000.0], [-1000.0 + np.log(3.0)]], np.float32)   # exp underflows to 0 in f32
  np.testing.assert_allclose(losses.log_mean_exp(jnp.asarray(big), axis=0), [-1000.0 + np.log(2.0)], rtol=1e-6)


def test_gaussian_kl_and_laplace_nll_match_scipy_and_the_standard_case(rng):
  mu_q, mu_p = rng.normal(size=(2, 4, 5)).astype(np.float32)
  lv_q, lv_p = rng.uniform(-2, 2, size=(2, 4, 5)).astype(np.float32)
  # KL by Monte Carlo would be noisy; compare with the entropy / cross-entropy decomposition instead
  cross = -np.sum(scipy.stats.norm.logpdf(mu_q, mu_p, np.exp(lv_p / 2)) - 0.5 * np.exp(lv_q - lv_p), -1)
  entropy = np.sum(scipy.stats.norm.entropy(mu_q, np.exp(lv_q / 2)), -1)
  np.testing.assert_allclose(losses.gaussian_kl(*map(jnp.asarray, (mu_q, lv_q, mu_p, lv_p))), cross - entropy, rtol=1e-4)
  zeros = jnp.zeros_like(jnp.asarray(mu_q))
  np.testing.assert_allclose(losses.gaussian_kl(jnp.asarray(mu_q), jnp.asarray(lv_q), zeros, zeros),
                             losses.kl_divergence(jnp.asarray(mu_q), jnp.asarray(lv_q)), rtol=1e-5)
  x, loc = rng.uniform(size=(2, 3, 4, 4, 1)).astype(np.float32)
  want = -scipy.stats.laplace.logpdf(x, loc, 1.0).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(losses.laplace_nll(jnp.asarray(x), jnp.asarray(loc)), want, rtol=1e-5)
  with pytest.raises(ValueError, match="same shape"):
    losses.gaussian_kl(zeros, zeros, zeros[:, :2], zeros)


def test_classifier_logit_of_a_label_depends_only_on_its_block(rng):
  labels, block = 4, 3
  clf = CharacteristicClassifier(labels, block)
  params = clf.init(jax.random.key(0), jnp.zeros((1, labels * block)))
  params = jax.tree.map(lambda p: p + jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  z_c = jnp.asarray(rng.normal(size=(1, labels * block)), jnp.float32)
  jac = np.asarray(jax.jacobian(lambda z: clf.apply(params, z)[0])(z_c))[:, 0]   # [labels, labels * block]
  for i in range(labels):
    own = np.zeros(labels * block, bool)
    own[i * block:(i + 1) * block] = True
    assert np.all(jac[i, ~own] == 0.0), i
    np.testing.assert_allclose(jac[i, own], np.asarray(params["params"]["weight"])[i], rtol=1e-6)


def _setup(batch=6, num_samples=5):
  rng = np.random.default_rng(0)
  c = load_config("ccvae_mnist")
  c.ccvae.num_samples = num_samples
  validate(c)
  models = ccvae.build_models(c, (28, 28, 1))
  state = ccvae.create_train_state(jax.random.key(0), c, models, ccvae.make_optimizers(c, 10))
  # move the prior and classifier off their symmetric initial values
  params = dict(state.params)
  for name in ("classifier", "prior"):
    params[name] = jax.tree.map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape), jnp.float32), params[name])
  state = state.replace(params=params)
  images = rng.integers(0, 256, (batch, 28, 28, 1), dtype=np.uint8)
  labels = (rng.random((batch, 10)) < 0.3).astype(np.float32)
  return c, models, state, images, labels


def _objectives_numpy(c, models, state, images, labels, key):
  """Both objectives per image, recomputed outside ``compute_losses`` (float64) with the same noise."""
  x = images.astype(np.float32) / 127.5 - 1.0
  mu, logvar = (np.asarray(a, np.float64) for a in models["encoder"].apply(
      {"params": state.params["encoder"]}, jnp.asarray(x), train=False))
  b, cd, k = len(x), ccvae.characteristic_dim(c), c.ccvae.num_samples
  z_key, k_key, y_key = jax.random.split(key, 3)
  std = np.exp(0.5 * logvar)
  z = mu + std * np.asarray(jax.random.normal(z_key, mu.shape))
  clf = state.params["classifier"]
  w, bias = np.asarray(clf["weight"], np.float64)[:, 0], np.asarray(clf["bias"], np.float64)
  log_bern = lambda y, logit: np.sum(y * -np.logaddexp(0, -logit) + (1 - y) * -np.logaddexp(0, logit), -1)  # noqa: E731
  logits = z[:, :cd] * w + bias
  z_ck = mu[:, :cd] + std[:, :cd] * np.asarray(jax.random.normal(k_key, (k, b, cd)))
  per_sample = log_bern(labels[None], z_ck * w + bias)                          # [k, b]
  log_qyx = np.log(np.mean(np.exp(per_sample), 0))
  logits_dec = np.asarray(models["decoder"].apply({"params": state.params["decoder"]}, jnp.asarray(z, jnp.float32),
                                                  train=False), np.float64).reshape(b, -1)
  target = ((x + 1) / 2).reshape(b, -1)
  log_pxz = -np.sum(np.logaddexp(0, logits_dec) - target * logits_dec, -1)
  p = {k_: np.asarray(v, np.float64)[:, 0] for k_, v in state.params["prior"].items()}
  softplus = lambda v: np.maximum(np.log1p(np.exp(v)), 1e-3)  # noqa: E731

  def kl(y):
    loc = np.where(y > 0, p["loc_true"], p["loc_false"])
    scale = softplus(np.where(y > 0, p["scale_true"], p["scale_false"]))
    mu_p = np.concatenate([loc, np.zeros((b, c.model.latent_dim - cd))], 1)
    var_p = np.concatenate([scale ** 2, np.ones((b, c.model.latent_dim - cd))], 1)
    return 0.5 * np.sum(np.log(var_p) - logvar + (np.exp(logvar) + (mu - mu_p) ** 2) / var_p - 1, -1)

  log_py = -10 * np.log(2.0)
  log_qyzc = log_bern(labels, logits)
  sup = np.exp(log_qyzc - log_qyx) * (log_pxz - kl(labels) - log_qyzc) + log_qyx + log_py
  y = np.asarray(jax.random.bernoulli(y_key, jax.nn.sigmoid(jnp.asarray(logits, jnp.float32))), np.float64)
  unsup = log_pxz - kl(y) - log_bern(y, logits) + log_py
  return sup, unsup, log_qyx


def test_supervised_and_unsupervised_objectives_match_numpy():
  c, models, state, images, labels = _setup()
  supervised = np.array([True, False, True, True, False, False])
  key = jax.random.key(3)
  fn = jax.jit(lambda p, x, y, s: ccvae.compute_losses(models, c, p, state.batch_stats, x, y, s, key))
  loss, (terms, _) = fn(state.params, jnp.asarray(images, jnp.float32) / 127.5 - 1.0, labels, supervised)
  sup, unsup, log_qyx = _objectives_numpy(c, models, state, images, labels, key)
  np.testing.assert_allclose(float(loss), -np.mean(np.where(supervised, sup, unsup)), rtol=2e-5)
  np.testing.assert_allclose(float(terms["log_qyx"]), log_qyx[supervised].mean(), rtol=2e-5)
  assert float(terms["supervised"]) == pytest.approx(0.5)
  # all supervised / all unsupervised pick one objective for every image
  for flags, want in ((np.ones(6, bool), sup), (np.zeros(6, bool), unsup)):
    np.testing.assert_allclose(float(fn(state.params, jnp.asarray(images, jnp.float32) / 127.5 - 1.0, labels, flags)[0]),
                               -want.mean(), rtol=2e-5)


def test_unsupervised_examples_ignore_their_labels_and_the_baseline_only_the_classifier_learns():
  c, models, state, images, labels = _setup()
  x = jnp.asarray(images, jnp.float32) / 127.5 - 1.0
  none = np.zeros(6, bool)
  loss = jax.jit(lambda y: ccvae.compute_losses(models, c, state.params, {}, x, y, none, jax.random.key(1))[0])
  a, b = loss(labels), loss(1 - labels)
  assert float(a) == float(b)
  c.ccvae.objective = "classifier"
  grads = jax.jit(jax.grad(lambda p: ccvae.compute_losses(models, c, p, {}, x, labels, ~none, jax.random.key(1))[0]))(
      state.params)
  assert all(np.all(g == 0) for g in jax.tree.leaves(grads["decoder"]) + jax.tree.leaves(grads["prior"]))
  assert any(np.any(g != 0) for g in jax.tree.leaves(grads["encoder"]))


def test_train_step_updates_every_network():
  c, models, state, images, labels = _setup(batch=4)
  step = jax.jit(ccvae.make_train_step(c, models, ccvae.make_optimizers(c, 10)))
  new, m = step(state, {"image": images, "label": labels, "supervised": np.array([True, True, False, False])})
  for name in ccvae.NETWORKS:
    before, after = jax.tree.leaves(state.params[name]), jax.tree.leaves(new.params[name])
    assert any(not np.allclose(p, q) for p, q in zip(before, after)), name
  assert float(m["train/nonfinite"]) == 0 and np.isfinite(float(m["train/elbo"]))


def test_conditional_prior_starts_at_plus_minus_two_and_walks_each_labels_own_range():
  prior = ConditionalPrior(3, 2)
  params = prior.init(jax.random.key(0), jnp.zeros((1, 3)))
  loc, scale = prior.apply(params, jnp.asarray([[1.0, 0.0, 1.0]]))
  np.testing.assert_allclose(loc, [[2, 2, -2, -2, 2, 2]])
  np.testing.assert_allclose(scale, np.full((1, 6), np.log1p(np.e)), rtol=1e-6)
  table = {"loc_true": np.array([[1.0], [5.0], [-3.0]]), "loc_false": np.array([[-1.0], [4.0], [2.0]]),
           "scale_true": np.array([[0.5], [1.0], [0.1]]), "scale_false": np.array([[0.25], [2.0], [0.3]])}
  for label, (start, end) in enumerate([(-1.5, 2.0), (0.0, 7.0), (2.6, -3.2)]):   # label 2 runs downwards
    walk = ccvae.walk_range(table, label, 5)
    assert walk.shape == (5, 1)
    np.testing.assert_allclose([walk[0, 0], walk[-1, 0]], [start, end], rtol=1e-6)
  with pytest.raises(ValueError, match="label"):
    ccvae.walk_range(table, 3, 5)


# --- Labelled subset and interleaving ---------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.004, 0.06, 0.2, 1.0])
def test_interleaving_rate_is_exact_and_even(rate):
  flags = np.array([supervision.is_supervised(i, rate) for i in range(5000)])
  counts = np.cumsum(flags)
  np.testing.assert_array_equal(counts, np.floor(np.arange(1, 5001) * np.float64(rate) + 1e-9).astype(int))
  gaps = np.diff(np.flatnonzero(flags))
  assert gaps.max() - gaps.min() <= 1                     # evenly spread


def test_labelled_subset_is_fixed_by_the_seed():
  a, b = supervision.labelled_subset(4560, 0.06, 0), supervision.labelled_subset(4560, 0.06, 0)
  np.testing.assert_array_equal(a, b)
  assert len(a) == round(0.06 * 4560) and len(np.unique(a)) == len(a)
  assert not np.array_equal(a, supervision.labelled_subset(4560, 0.06, 1))
  assert len(supervision.labelled_subset(4560, 0.004, 0)) == 18 and len(supervision.labelled_subset(10, 0.004, 0)) == 1


def test_batches_interleave_labelled_and_unlabelled_examples(tfds_dir):
  c = load_config("ccvae_mnist")
  c.data.data_dir = tfds_dir
  c.ccvae.supervision_rate = 0.25
  train = pipeline.split_arrays(c, c.data.train_split)
  subset = supervision.labelled_subset(len(train["image"]), 0.25, c.seed)
  index_of = {im.tobytes(): i for i, im in enumerate(train["image"])}
  ds = supervision.ccvae_dataset(c, 16, seed=c.seed)
  seen_labelled = []
  for i in range(12):
    batch = ds[i]
    sup = supervision.is_supervised(i, 0.25)
    assert batch["supervised"].all() == sup and batch["supervised"].any() == sup
    rows = np.array([index_of[im.tobytes()] for im in batch["image"]])
    assert np.isin(rows, subset).all() == sup and not np.isin(rows, subset).any() == (not sup)
    if sup:
      np.testing.assert_array_equal(batch["label"], np.eye(10, dtype=np.float32)[train["label"][rows]])
      seen_labelled.extend(rows)
    else:
      assert not batch["label"].any()                      # no label leaks into an unlabelled batch
  assert len(seen_labelled) == 3 * 16 and len(set(seen_labelled)) == 3 * 16   # a permutation, no repeats yet
  again = supervision.ccvae_dataset(c, 16, seed=c.seed)
  np.testing.assert_array_equal(again[7]["image"], ds[7]["image"])           # batch i is a function of (seed, i)


def test_config_errors_name_the_fix():
  c = load_config("ccvae_mnist")
  c.model.latent_dim = 6
  with pytest.raises(ValueError, match="model.latent_dim"):
    validate(c)
  c = load_config("ccvae_mnist")
  c.ccvae.walk_pairs = (("3", "Smiling"),)
  with pytest.raises(ValueError, match="walk_pairs"):
    validate(c)
  c = load_config("ccvae_mnist")
  c.loss.llike = "laplace"
  with pytest.raises(ValueError, match="llike=bernoulli"):
    validate(c)


# --- End to end ------------------------------------------------------------------------------------

def test_train_and_evaluate_ccvae_smoke(tfds_dir, tmp_path):
  c = load_config("ccvae_mnist")
  c.data.data_dir = tfds_dir
  c.ccvae.supervision_rate = 0.5
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(c, str(workdir))
  logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert {"train/elbo", "train/llike", "train/kl", "train/log_qyx"} <= set(logged[-1])
  assert [m["train/supervised"] for m in logged if "train/supervised" in m] == [0.5, 0.5, 0.5]  # windows of 2
  results, folder = evaluators.evaluate(str(workdir))
  assert results["method"] == "ccvae" and results["supervision_rate"] == 0.5
  assert 0.0 <= results["accuracy/mean"] <= 1.0 and 0.0 <= results["intervention/flip_rate"] <= 1.0
  assert 0.0 <= results["intervention/flip_rate_from_reconstruction"] <= 1.0
  # the ceiling, recomputed from the cached digit classifier's predictions on the test split:
  # each (digit d, value v) counts the first n images it calls otherwise, at its recall of v
  train_arrays, test_arrays = pipeline.split_arrays(c, c.data.train_split), pipeline.split_arrays(c, c.data.eval_split)
  scorer = evaluators.classifier_for(c, train_arrays, test_arrays)
  called = domain_classifier.predict(scorer, test_arrays["image"])[0].argmax(-1)
  n, truth = min(c.eval.intervention_images, len(called)), test_arrays["label"]
  hits = cases = 0.0
  for d in range(10):
    for value, is_value in ((1, called == d), (0, called != d)):
      recall = np.mean(is_value[(truth == d) == bool(value)])
      assert results[f"classifier/{d}/recall_{value}"] == pytest.approx(recall)
      hits, cases = hits + recall * np.sum(~is_value[:n]), cases + np.sum(~is_value[:n])
  assert results["intervention/flip_rate_ceiling"] == pytest.approx(hits / cases)
  # agreement of Dec(mu) with the test images' verdicts is a weighted mean of the per-label, per-value keep rates
  keeps = [v for k, v in results.items() if k.startswith("reconstruction/") and k.endswith(("/keeps_1", "/keeps_0"))]
  assert all(f"reconstruction/{d}/keeps_0" in results for d in range(10))       # every digit is "not d" somewhere
  assert min(keeps) - 1e-9 <= results["intervention/reconstruction_agreement"] <= max(keeps) + 1e-9
  # the model's own verdict at the prior's locations, recomputed from the diagonal classifier's parameters
  run, state, _ = evaluators.restore_run(str(workdir))
  prior, clf = ccvae.prior_parameters(state), jax.device_get(state.params["classifier"])
  logit = lambda loc: np.sum(loc * np.asarray(clf["weight"]), -1) + np.asarray(clf["bias"])  # noqa: E731
  own_1, own_0 = 1 / (1 + np.exp(-logit(prior["loc_true"]))), 1 / (1 + np.exp(logit(prior["loc_false"])))
  np.testing.assert_allclose([results[f"intervention/{d}/own_q_to_1"] for d in range(10)], own_1, rtol=1e-5)
  np.testing.assert_allclose([results[f"intervention/{d}/own_q_to_0"] for d in range(10)], own_0, rtol=1e-5)
  assert results["intervention/own_agreement"] == pytest.approx(np.mean(np.concatenate([own_1, own_0]) > 0.5))
  assert results["accuracy/mean"] == pytest.approx(np.mean([results[f"accuracy/{d}"] for d in range(10)]))
  assert 0.0 <= results["accuracy/all_labels"] <= results["accuracy/mean"] and 0.0 <= results["accuracy/class"] <= 1.0
  assert results["loss/elbo"] < 0
  walk = Image.open(f"{folder}/latent_walk.png")
  assert walk.size == (8 * 30 + 2, 10 * 30 + 2)               # a row per digit: the image and 7 steps
  assert Image.open(f"{folder}/latent_walk_3_8.png").size == (5 * 30 + 2, 5 * 30 + 2)
  assert Image.open(f"{folder}/characteristic_swaps.png").size[0] == 6 * 30 + 2
  assert Image.open(f"{folder}/conditional_generation.png").size[0] == 8 * 30 + 2
