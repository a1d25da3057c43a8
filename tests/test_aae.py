"""Adversarial autoencoders: each phase's loss, which networks each phase moves, the priors, the
Parzen estimator, the labelled subset, the batches, and train + eval end to end (in process)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image
from scipy import ndimage, special, stats

from tests.conftest import load_config
from vaegan_jax import evaluators, metrics, priors, trainer
from vaegan_jax.config import AAE_PHASES, validate
from vaegan_jax.data import labelled, pipeline
from vaegan_jax.methods import aae
from vaegan_jax.models.aae import LatentDiscriminator, LatentDiscriminators


def _log_sigmoid(v):
  return -np.logaddexp(0.0, -np.asarray(v, np.float64))


def _setup(method="aae", **aae_fields):
  """A smoke-sized AAE (hidden 32, 32) on fake 28x28 images: config, models, optimizers, state, batch."""
  rng = np.random.default_rng(0)
  c = load_config("semi_aae_mnist" if method == "semi_aae" else "aae_mnist")
  for k, v in aae_fields.items():
    c.aae[k] = v
  if c.aae.prior == "mixture":
    c.model.latent_dim = 2
  validate(c)
  models = aae.build_models(c, (28, 28, 1))
  optimizers = aae.make_optimizers(c, steps_per_epoch=10)
  state = aae.create_train_state(jax.random.key(0), c, models, optimizers)
  batch = {"image": rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8), "label": np.arange(6) % 3,
           "labelled_image": rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8),
           "labelled_label": np.array([0, 1, 2, 3, 4, 5])}
  return c, models, optimizers, state, batch


def _x(batch, key="image"):
  return jnp.asarray(batch[key], jnp.float32) / 127.5 - 1.0


# --- Each phase's loss against a reference computed another way --------------------------------

@pytest.mark.parametrize("method", ["aae", "semi_aae"])
def test_reconstruction_loss_is_the_mean_bernoulli_nll_of_dec_enc(method):
  c, models, _, state, batch = _setup(method)
  p = state.params
  z, y_logits = models["encoder"].apply({"params": p["encoder"]}, _x(batch), train=False)
  code = np.asarray(z) if method == "aae" else np.concatenate(
      [np.exp(y_logits) / np.exp(y_logits).sum(-1, keepdims=True), z], -1)   # decoder sees [y, z]
  logits = np.asarray(models["decoder"].apply({"params": p["decoder"]}, jnp.asarray(code), train=False), np.float64)
  t = batch["image"].astype(np.float64) / 255.0
  want = np.mean(-np.sum(t * _log_sigmoid(logits) + (1 - t) * _log_sigmoid(-logits), axis=(1, 2, 3)))
  got, terms = aae.reconstruction_loss(models, p, _x(batch))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  assert terms["reconstruction"] == got


@pytest.mark.parametrize("method,fields", [("aae", {}), ("aae", {"prior": "mixture", "condition_on_label": True}),
                                           ("semi_aae", {})])
def test_discriminator_and_generator_losses_are_bce_of_the_discriminator_outputs(method, fields):
  c, models, _, state, batch = _setup(method, **fields)
  p, x, labels, key = state.params, _x(batch), jnp.asarray(batch["label"]), jax.random.key(3)
  z, y_logits = models["encoder"].apply({"params": p["encoder"]}, x, train=False)
  z_key, y_key = jax.random.split(key)
  z_prior = aae.prior_draws(c, z_key, labels)
  onehot = np.eye(c.aae.num_components)[batch["label"]]
  cond = (lambda v: np.concatenate([v, onehot], -1)) if c.aae.condition_on_label else (lambda v: v)  # noqa: E731
  no_y = jnp.zeros((6, 10)) if method == "semi_aae" else None   # D_z does not look at y
  d_z = lambda v: np.asarray(models["discriminator"].apply(  # noqa: E731
      {"params": p["discriminator"]}, jnp.asarray(cond(np.asarray(v)), jnp.float32), no_y, train=False)[0], np.float64)
  want_d = -np.mean(_log_sigmoid(d_z(z_prior))) - np.mean(_log_sigmoid(-d_z(z)))
  want_g = -np.mean(_log_sigmoid(d_z(z)))
  if method == "semi_aae":
    y = jax.nn.softmax(y_logits)
    y_prior = np.eye(10)[np.asarray(jax.random.randint(y_key, (6,), 0, 10))]
    d_y = lambda v: np.asarray(models["discriminator"].apply(  # noqa: E731
        {"params": p["discriminator"]}, jnp.asarray(z), jnp.asarray(v, jnp.float32), train=False)[1], np.float64)
    want_d += -np.mean(_log_sigmoid(d_y(y_prior))) - np.mean(_log_sigmoid(-d_y(y)))
    want_g += -np.mean(_log_sigmoid(d_y(y)))
  got_d, _ = aae.discriminator_loss(models, c, p, x, labels, key)
  got_g, _ = aae.generator_loss(models, c, p, x, labels)
  np.testing.assert_allclose(float(got_d), want_d, rtol=1e-5)
  np.testing.assert_allclose(float(got_g), want_g, rtol=1e-5)


def test_classification_loss_is_the_cross_entropy_of_q_y_given_x():
  c, models, _, state, batch = _setup("semi_aae")
  _, y_logits = models["encoder"].apply({"params": state.params["encoder"]}, _x(batch, "labelled_image"), train=False)
  logits = np.asarray(y_logits, np.float64)
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want = -np.mean(log_softmax[np.arange(6), batch["labelled_label"]])
  got, terms = aae.classification_loss(models, state.params, _x(batch, "labelled_image"),
                                       jnp.asarray(batch["labelled_label"]))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  assert float(terms["labelled_accuracy"]) == pytest.approx(np.mean(logits.argmax(-1) == batch["labelled_label"]))


def test_consistency_loss_is_the_kl_from_the_fixed_undeformed_q_y_to_the_deformed_one():
  _, models, _, state, batch = _setup("semi_aae")
  p, x = state.params, _x(batch)
  x_deformed = aae.random_deformations(jax.random.key(2), x, 2, 25.0, 0.2)
  q = special.softmax(np.asarray(models["encoder"].apply({"params": p["encoder"]}, x, train=False)[1], np.float64), -1)
  r = special.softmax(np.asarray(models["encoder"].apply({"params": p["encoder"]}, x_deformed, train=False)[1], np.float64), -1)
  got, terms = aae.consistency_loss(models, p, x, x_deformed)
  np.testing.assert_allclose(float(got), np.mean(np.sum(q * np.log(q / r), -1)), rtol=1e-4)
  assert float(terms["consistency"]) == float(got) > 0
  assert float(aae.consistency_loss(models, p, x, x)[0]) == pytest.approx(0.0, abs=1e-6)
  # The target is a constant: the gradient is that of the cross-entropy against fixed q,
  # not of a KL that could also move q(y|x) towards the deformed prediction.
  fixed = jnp.asarray(q, jnp.float32)

  def against_fixed(e):
    logits = models["encoder"].apply({"params": e}, x_deformed, train=False)[1]
    return -jnp.mean(jnp.sum(fixed * jax.nn.log_softmax(logits), -1))

  g = jax.grad(lambda e: aae.consistency_loss(models, {**p, "encoder": e}, x, x_deformed)[0])(p["encoder"])
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(jax.grad(against_fixed)(p["encoder"]))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=1e-6)
  assert any(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(g))


def test_consistency_weight_ramps_up_as_laine_and_aila_and_enters_the_classification_phase():
  steps = np.array([0, 250, 500, 999, 1000, 5000])
  want = np.exp(-5.0 * (1.0 - np.minimum(steps / 1000, 1.0)) ** 2)
  np.testing.assert_allclose([float(aae.consistency_rampup(jnp.asarray(s), 1000)) for s in steps], want, rtol=1e-6)
  assert float(aae.consistency_rampup(jnp.asarray(0), 0)) == 1.0
  c, models, optimizers, state, batch = _setup("semi_aae", consistency_weight=2.0, consistency_rampup_steps=1000)
  _, m = jax.jit(aae.make_train_step(c, models, optimizers))(state, batch)
  assert float(m["train/consistency_weight"]) == pytest.approx(2.0 * np.exp(-5.0))
  assert float(m["train/consistency"]) > 0
  # At weight 0 the term is neither computed nor logged.
  c0, models0, optimizers0, state0, _ = _setup("semi_aae", consistency_weight=0.0)
  assert "train/consistency" not in jax.jit(aae.make_train_step(c0, models0, optimizers0))(state0, batch)[1]
  for fields, match in (({"consistency_weight": -1.0}, "aae.consistency_weight"),
                        ({"consistency_rampup_steps": -1}, "aae.consistency_rampup_steps"),
                        ({"consistency_weight": 1.0, "labelled_shift": 0, "labelled_rotation": 0.0,
                          "labelled_scale": 0.0}, "no deformation")):
    c = load_config("semi_aae_mnist")
    for k, v in fields.items():
      c.aae[k] = v
    with pytest.raises(ValueError, match=match):
      validate(c)


# --- Which networks each phase moves -----------------------------------------------------------

def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_the_discriminator_phase_does_not_move_the_encoder_and_the_generator_phase_not_the_discriminator():
  c, models, optimizers, state, batch = _setup("semi_aae")
  x, labels = _x(batch), jnp.asarray(batch["label"])
  p, o = state.params, state.opt_state
  d_loss = lambda q: aae.discriminator_loss(models, c, q, x, labels, jax.random.key(1))  # noqa: E731
  # No gradient reaches the encoder through the discriminator's loss (its codes are constants).
  g = jax.grad(lambda e: d_loss({**p, "encoder": e})[0])(p["encoder"])
  assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(g))
  p_d, o_d, *_ = aae._phase(d_loss, ("discriminator",), optimizers, p, o)  # pylint: disable=protected-access
  assert _changed(p_d["discriminator"], p["discriminator"])
  assert not _changed(p_d["encoder"], p["encoder"]) and not _changed(p_d["decoder"], p["decoder"])
  assert not _changed(o_d["generator"], o["generator"]) and not _changed(o_d["encoder"], o["encoder"])
  g_loss = lambda q: aae.generator_loss(models, c, q, x, labels)  # noqa: E731
  p_g, o_g, *_ = aae._phase(g_loss, ("generator",), optimizers, p, o)  # pylint: disable=protected-access
  assert _changed(p_g["encoder"], p["encoder"]) and _changed(o_g["generator"], o["generator"])
  assert not _changed(p_g["discriminator"], p["discriminator"]) and not _changed(o_g["encoder"], o["encoder"])


def test_one_train_step_moves_every_network_and_lowers_the_reconstruction_loss():
  c, models, optimizers, state, batch = _setup("semi_aae")
  step = jax.jit(aae.make_train_step(c, models, optimizers))
  first, metrics_ = step(state, batch)
  assert int(first.step) == 1 and float(metrics_["train/nonfinite"]) == 0.0
  for name in ("encoder", "decoder", "discriminator"):
    assert _changed(first.params[name], state.params[name]), name
  for name in AAE_PHASES:
    assert _changed(first.opt_state[name], state.opt_state[name]), name
  # Scored without dropout: the step's own dropout-noised figure moves by as much as six steps
  # lower it (its seed-3 batch rose), the deterministic error fell on each of seeds 0-7.
  s = first
  for _ in range(5):
    s, m = step(s, batch)
  error = lambda st: float(jnp.mean(aae.reconstruction_error(models, st, jnp.asarray(batch["image"]))))  # noqa: E731
  assert error(s) < error(state)
  # A batch with NaN-producing input is skipped whole (common.commit): nothing changes.
  poisoned = s.replace(params={**s.params, "discriminator": jax.tree.map(lambda v: v * np.nan, s.params["discriminator"])})
  after, m = step(poisoned, batch)
  assert float(m["train/nonfinite"]) == 1.0 and not _changed(after.params["encoder"], s.params["encoder"])


# --- Priors --------------------------------------------------------------------------------------

def test_mixture_prior_puts_class_k_on_component_k_with_the_stated_density(rng):
  labels = jnp.repeat(jnp.arange(10), 2000)
  z = np.asarray(priors.mixture(jax.random.key(0), labels, 4, 10))
  means = np.asarray(priors.mixture_means(4, 10))
  got = z.reshape(10, 2000, 4).mean(1)
  np.testing.assert_allclose(got, means, atol=0.05)
  # The density against scipy: each pair is N(shift * u_k, R_k diag(.5^2, .1^2) R_k^T), pairs independent.
  points = np.asarray(rng.normal(size=(7, 4)) * 1.5, np.float32)
  want = []
  for v in points:
    comps = []
    for k in range(10):
      a = 2 * np.pi * k / 10
      r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
      cov = r @ np.diag([0.25, 0.01]) @ r.T
      mean = 1.4 * np.array([np.cos(a), np.sin(a)])
      comps.append(stats.multivariate_normal(mean, cov).logpdf(v[:2]) + stats.multivariate_normal(mean, cov).logpdf(v[2:]))
    want.append(np.logaddexp.reduce(comps) - np.log(10))
  np.testing.assert_allclose(np.asarray(priors.mixture_log_density(jnp.asarray(points), 10)), want, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(priors.gaussian_log_density(jnp.asarray(points))),
                             stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(points), rtol=1e-5)
  with pytest.raises(ValueError, match="even"):
    priors.mixture(jax.random.key(0), labels[:3], 3, 10)


# --- Parzen window -------------------------------------------------------------------------------

def test_parzen_of_one_point_is_the_gaussian_density_and_mixes_over_samples(rng):
  x = rng.uniform(size=(5, 6))
  one = rng.uniform(size=(1, 6))
  sigmas = [0.2, 0.7]
  got = metrics.parzen_log_likelihood(x, one, sigmas)
  for i, s in enumerate(sigmas):
    np.testing.assert_allclose(got[i], stats.multivariate_normal(one[0], s * s * np.eye(6)).logpdf(x), rtol=1e-4)
  two = rng.uniform(size=(2, 6))
  want = np.logaddexp(*[stats.multivariate_normal(t, 0.09 * np.eye(6)).logpdf(x) for t in two]) - np.log(2)
  np.testing.assert_allclose(metrics.parzen_log_likelihood(x, two, [0.3])[0], want, rtol=1e-4)
  with pytest.raises(ValueError, match="positive"):
    metrics.parzen_log_likelihood(x, two, [0.0])


def test_parzen_evaluation_chooses_the_bandwidth_on_validation_and_reports_the_standard_error(rng):
  samples = rng.normal(size=(400, 3)) * 0.3
  validation, test = rng.normal(size=(300, 3)) * 0.3, rng.normal(size=(200, 3)) * 0.3
  sigmas = [0.01, 0.1, 0.2, 5.0]
  out = metrics.parzen_evaluation(validation, test, samples, sigmas)
  per = metrics.parzen_log_likelihood(validation, samples, sigmas).mean(1)
  assert out["bandwidth"] == sigmas[int(np.argmax(per))] and out["bandwidth"] in (0.1, 0.2)
  ll = metrics.parzen_log_likelihood(test, samples, [out["bandwidth"]])[0]
  np.testing.assert_allclose(out["log_likelihood"], ll.mean(), rtol=1e-6)
  np.testing.assert_allclose(out["log_likelihood_sem"], ll.std(ddof=1) / np.sqrt(200), rtol=1e-6)


def test_roc_auc_matches_the_pairwise_definition(rng):
  scores, positive = rng.normal(size=50), rng.uniform(size=50) < 0.3
  pairs = [(a > b) + 0.5 * (a == b) for a in scores[positive] for b in scores[~positive]]
  np.testing.assert_allclose(metrics.roc_auc(scores, positive), np.mean(pairs))
  with pytest.raises(ValueError, match="both"):
    metrics.roc_auc(scores, np.ones(50, bool))


# --- Labelled subset and batches ---------------------------------------------------------------

def test_labelled_subset_is_balanced_and_fixed_by_the_seed(rng):
  labels = rng.integers(0, 10, 5000)
  a = labelled.labelled_subset(labels, 100, seed=0)
  assert len(np.unique(a)) == 100 and np.all(np.bincount(labels[a], minlength=10) == 10)
  np.testing.assert_array_equal(a, labelled.labelled_subset(labels, 100, seed=0))
  assert not np.array_equal(a, labelled.labelled_subset(labels, 100, seed=1))
  assert np.all(np.bincount(labels[labelled.labelled_subset(labels, 1000, seed=0)], minlength=10) == 100)
  with pytest.raises(ValueError, match="multiple"):
    labelled.labelled_subset(labels, 105, seed=0)


def test_semi_supervised_batches_draw_from_the_subset_and_resume_exactly(tfds_dir):
  c = load_config("semi_aae_mnist")
  c.data.data_dir = tfds_dir
  arrays = labelled.train_arrays(c)
  subset = labelled.labelled_subset(arrays["label"], c.aae.num_labels, c.seed)
  it = pipeline.train_iterator(c, 16, seed=0, dataset=labelled.aae_dataset)
  batches = [next(it) for _ in range(2)]
  state = it.get_state()
  after = next(it)
  resumed = next(pipeline.train_iterator(c, 16, seed=0, state=state, dataset=labelled.aae_dataset))
  for k in after:
    np.testing.assert_array_equal(resumed[k], after[k])
  allowed = {arrays["image"][j].tobytes(): arrays["label"][j] for j in subset}
  for b in batches + [after]:
    for img, label in zip(b["labelled_image"], b["labelled_label"]):
      assert allowed[img.tobytes()] == label       # every labelled example is from the subset
  c.method, c.aae.normal_class = "aae", 3
  one_class = next(pipeline.train_iterator(c, 16, seed=0, dataset=labelled.aae_dataset))
  assert set(one_class) == {"image", "label"} and np.all(one_class["label"] == 3)


def test_bad_aae_configs_are_refused_with_the_fix(tfds_dir):
  c = load_config("aae_mnist")
  c.data.data_dir, c.data.validation_split = tfds_dir, "valid"    # checked before training, not at eval
  with pytest.raises(ValueError, match="no split 'valid'.*validation_split"):
    trainer.setup(c)
  c = load_config("aae_mnist")
  c.aae.prior, c.model.latent_dim = "mixture", 3
  with pytest.raises(ValueError, match="latent_dim=3 must be even"):
    validate(c)
  c.aae.prior, c.aae.condition_on_label = "gaussian", True
  with pytest.raises(ValueError, match="--config.aae.prior=mixture"):
    validate(c)
  c = load_config("semi_aae_mnist")
  c.aae.normal_class = 2
  with pytest.raises(ValueError, match="normal_class=-1"):
    validate(c)


# --- End to end ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,fields", [("semi_aae_mnist", {}), ("aae_mnist", {"normal_class": 3})])
def test_train_and_evaluate_aae_smoke(name, fields, tfds_dir, tmp_path):
  c = load_config(name)
  c.data.data_dir = tfds_dir
  for k, v in fields.items():
    c.aae[k] = v
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(c, str(workdir))
  last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert {"train/reconstruction", "train/d_z_loss", "train/g_z_loss"} <= set(last)
  results, folder = evaluators.evaluate(str(workdir))
  assert results["method"] == c.method and results["parzen/num_samples"] == 500
  assert np.isfinite(results["parzen/log_likelihood"]) and results["parzen/bandwidth"] > 0
  if c.method == "semi_aae":
    assert 0.0 <= results["classification/test_error"] <= 1.0 and "train/classification" in last
    assert Image.open(f"{folder}/samples_by_class.png").size[1] > 100   # 10 rows, one per class
  else:
    assert results["anomaly/normal_class"] == 3
    assert 0.0 <= results["anomaly/roc_auc_reconstruction"] <= 1.0
    assert 0.0 <= results["anomaly/roc_auc_combined"] <= 1.0
  for figure in ("samples", "reconstructions", "latent"):
    assert Image.open(f"{folder}/{figure}.png").size[0] > 100


def test_step_drops_and_sgd_with_momentum_follow_the_config():
  """Makhzani et al.'s schedule: SGD with momentum, the rate cut by a factor at given epochs."""
  import optax  # pylint: disable=import-outside-toplevel
  from vaegan_jax.config import base_config  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import common  # pylint: disable=import-outside-toplevel
  c = base_config()
  o = c.optim.encoder
  o.optimizer, o.learning_rate, o.decay_per_epoch, o.weight_decay = "sgd", 0.01, 1.0, 0.0
  o.momentum, o.step_decay_epochs, o.step_decay = 0.9, (2, 5), 0.1
  schedule = common.learning_rate_schedule(o, steps_per_epoch=10)
  assert [float(schedule(s)) for s in (0, 19, 20, 49, 50, 500)] == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
  # The update is heavy-ball momentum: v = g + 0.9 v, params -= lr * v.
  tx = common.make_optimizers(c, ("encoder",), 10)["encoder"]
  params, grad = jnp.ones(3), jnp.asarray([1.0, -2.0, 0.5])
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(grad, state, params)
    params = optax.apply_updates(params, updates)
  expected = 1.0 - 0.01 * (np.asarray(grad) * (1 + 1.9 + 2.71))
  np.testing.assert_allclose(params, expected, rtol=1e-5)
  o.step_decay_epochs = (5, 2)
  with pytest.raises(ValueError, match="step_decay_epochs"):
    validate(c)


def test_semi_aae_config_drops_every_phase_together_halfway():
  """configs/semi_aae_mnist.py: all five phases at their rate for 5 epochs, a tenth of it after,
  within a run of 10 epochs (500 steps of 100 per epoch of 50,000 digits)."""
  from vaegan_jax.methods import common  # pylint: disable=import-outside-toplevel
  c = load_config("semi_aae_mnist", "")
  steps_per_epoch = 50_000 // c.train.batch_size
  assert c.train.num_steps == 10 * steps_per_epoch
  assert aae.optimizer_names(c) == AAE_PHASES   # the config's list is the method's
  for name in AAE_PHASES:
    schedule = common.learning_rate_schedule(c.optim[name], steps_per_epoch)
    rate = c.optim[name].learning_rate
    assert [float(schedule(s)) for s in (0, 5 * steps_per_epoch - 1, 5 * steps_per_epoch, c.train.num_steps)] \
        == pytest.approx([rate, rate, rate / 10, rate / 10]), name


def test_encoder_dropout_is_on_in_training_only():
  c = load_config("semi_aae_mnist")
  c.aae.encoder_dropout = 0.5
  models = aae.build_models(c, (28, 28, 1))
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)), jnp.float32)
  params = {"encoder": models["encoder"].init(jax.random.key(0), x, train=False)["params"]}
  deterministic = aae.encoder_outputs(models, params, x)
  np.testing.assert_array_equal(deterministic[2], aae.encoder_outputs(models, params, x)[2])
  dropped = [aae.encoder_outputs(models, params, x, jax.random.key(k))[2] for k in (1, 2)]
  assert not np.allclose(dropped[0], dropped[1]) and not np.allclose(dropped[0], deterministic[2])
  # Without dropout the parameters are the same layers: rate 0 gives the deterministic output.
  c.aae.encoder_dropout = 0.0
  plain = aae.build_models(c, (28, 28, 1))
  np.testing.assert_array_equal(aae.encoder_outputs(plain, params, x, jax.random.key(1))[2], deterministic[2])


def test_init_std_redraws_every_kernel_and_zeroes_every_bias():
  c = load_config("semi_aae_mnist")
  models = aae.build_models(c, (28, 28, 1))
  optimizers = aae.make_optimizers(c, 10)
  default = aae.create_train_state(jax.random.key(0), c, models, optimizers)
  c.aae.init_std = 0.01
  state = aae.create_train_state(jax.random.key(0), c, models, optimizers)
  assert jax.tree.structure(state.params) == jax.tree.structure(default.params)
  for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      if leaf.size >= 1000:   # the sample std of >= 1000 draws is within 10% of 0.01
        assert abs(float(jnp.std(leaf)) - 0.01) < 1e-3, name
    else:
      assert float(jnp.abs(leaf).max()) == 0.0, name
  big = [leaf for leaf in jax.tree.leaves(default.params["encoder"]) if leaf.ndim == 2]
  assert float(jnp.std(big[0])) > 0.02   # Flax's default (LeCun normal: 1/sqrt(784) = 0.036) differs
  c.aae.init_std = -0.1
  with pytest.raises(ValueError, match="aae.init_std"):
    validate(c)


def test_y_minibatch_mean_feeds_d_y_each_y_beside_its_batch_mean():
  c = load_config("semi_aae_mnist")
  assert c.aae.y_minibatch_mean   # the config's default
  models = aae.build_models(c, (28, 28, 1))
  rng = np.random.default_rng(0)
  y = jnp.asarray(jax.nn.softmax(rng.normal(size=(6, 10)) * 3), jnp.float32)
  z = jnp.zeros((6, c.model.latent_dim), jnp.float32)
  params = models["discriminator"].init(jax.random.key(0), z, y, train=False)["params"]
  assert params["y"]["Dense_0"]["kernel"].shape == (20, c.model.mlp_hidden[0])
  _, logits = models["discriminator"].apply({"params": params}, z, y, train=False)
  # Reference: the plain per-sample discriminator on [y, batch mean], computed here.
  expected = LatentDiscriminator(tuple(c.model.mlp_hidden)).apply(
      {"params": params["y"]}, jnp.concatenate([y, jnp.tile(jnp.mean(y, 0, keepdims=True), (6, 1))], -1), train=False)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
  # Permuting the batch permutes the logits; changing another member changes y_0's logit.
  perm = np.asarray([3, 0, 5, 1, 4, 2])
  np.testing.assert_allclose(models["discriminator"].apply({"params": params}, z, y[perm], train=False)[1],
                             logits[perm], rtol=1e-5, atol=1e-5)
  other = y.at[5].set(jax.nn.one_hot(7, 10))
  assert abs(float(models["discriminator"].apply({"params": params}, z, other, train=False)[1][0] - logits[0])) > 1e-6


@pytest.mark.parametrize("minibatch_mean", [False, True])
def test_only_d_y_with_the_batch_mean_tells_single_class_batches_from_categorical_draws(minibatch_mean):
  # Fake batches hold one class each (a collapsed q(y|x)), real ones Cat(1/10) draws: every
  # fake vector is a one-hot and the classes are uniform over batches, so one vector at a time
  # carries no evidence (best loss log 4); the batch mean carries all of it.
  disc = LatentDiscriminators(hidden=(64, 64), num_classes=10, y_minibatch_mean=minibatch_mean)
  z = jnp.zeros((50, 2), jnp.float32)
  params = disc.init(jax.random.key(0), z, jnp.zeros((50, 10)), train=False)["params"]
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  def loss_fn(p, real, fake):
    real_logits = disc.apply({"params": p}, z, real, train=False)[1]
    fake_logits = disc.apply({"params": p}, z, fake, train=False)[1]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, 1.0)
                    + optax.sigmoid_binary_cross_entropy(fake_logits, 0.0))

  @jax.jit
  def step(p, s, key):
    k1, k2 = jax.random.split(key)
    real = jax.nn.one_hot(jax.random.randint(k1, (50,), 0, 10), 10)
    fake = jax.nn.one_hot(jnp.full((50,), jax.random.randint(k2, (), 0, 10)), 10)
    loss, grads = jax.value_and_grad(loss_fn)(p, real, fake)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  losses_seen = []
  for i in range(400):
    params, opt_state, loss = step(params, opt_state, jax.random.key(i))
    losses_seen.append(float(loss))
  final = np.mean(losses_seen[-50:])
  if minibatch_mean:
    assert final < 0.1, final
  else:
    assert final > 1.2, final   # log 4 = 1.386: it cannot beat chance


def test_random_deformations_with_shifts_only_move_each_image_by_its_own_whole_pixel_offset(rng):
  x = np.full((8, 12, 10, 1), -1.0, np.float32)
  x[:, 3:9, 3:7] = rng.uniform(-1, 1, (8, 6, 4, 1))   # content away from the border
  key = jax.random.key(3)
  shifted = np.asarray(aae.random_deformations(key, jnp.asarray(x), 2))
  offsets = np.asarray(jax.random.randint(key, (8, 2), 0, 5)) - 2   # the draws the function makes
  assert len({tuple(o) for o in offsets}) > 1
  for image, moved, (dy, dx) in zip(x, shifted, offsets):
    expected = np.full_like(image, -1.0)
    expected[max(0, -dy):12 - max(0, dy), max(0, -dx):10 - max(0, dx)] = \
        image[max(0, dy):12 - max(0, -dy), max(0, dx):10 - max(0, -dx)]
    np.testing.assert_array_equal(moved, expected)
    np.testing.assert_allclose((moved + 1).sum(), (image + 1).sum(), rtol=1e-6)   # nothing cut off
  np.testing.assert_array_equal(np.asarray(aae.random_deformations(key, jnp.asarray(x), 0)), x)
  # Rotation and scale draw per image too: the eight outputs differ from the input and each other.
  turned = np.asarray(aae.random_deformations(key, jnp.asarray(x), 0, max_rotation=30.0, max_scale=0.2))
  assert all(np.abs(t - image).max() > 0.1 for t, image in zip(turned, x))
  assert len({t.tobytes() for t in turned}) == 8
  validate(load_config("semi_aae_mnist"))
  for field, bad in (("labelled_rotation", -5.0), ("labelled_scale", 1.0), ("labelled_shift", -1)):
    c = load_config("semi_aae_mnist")
    c.aae[field] = bad
    with pytest.raises(ValueError, match=f"aae.{field}"):
      validate(c)


def test_warp_matches_scipy_affine_transform_and_turns_counter_clockwise(rng):
  x = rng.uniform(-1, 1, (3, 12, 10, 2)).astype(np.float32)
  offsets = rng.uniform(-2, 2, (3, 2)).astype(np.float32)
  angles, scales = rng.uniform(-1, 1, 3).astype(np.float32), rng.uniform(0.7, 1.3, 3).astype(np.float32)
  got = np.asarray(aae.warp(jnp.asarray(x), jnp.asarray(offsets), jnp.asarray(angles), jnp.asarray(scales)))
  centre = np.array([5.5, 4.5])
  for i in range(3):
    matrix = np.array([[np.cos(angles[i]), np.sin(angles[i])], [-np.sin(angles[i]), np.cos(angles[i])]]) / scales[i]
    for ch in range(2):   # output[v] = input[matrix v + offset], bilinear, -1 outside
      want = ndimage.affine_transform(x[i, ..., ch].astype(np.float64), matrix, offset=centre + offsets[i] - matrix @ centre,
                                      order=1, mode="grid-constant", cval=-1.0)
      np.testing.assert_allclose(got[i, ..., ch], want, atol=1e-5)
  corner = np.full((1, 5, 5, 1), -1.0, np.float32)
  corner[0, 0, 4] = 1.0
  quarter = aae.warp(jnp.asarray(corner), jnp.zeros((1, 2)), jnp.array([np.pi / 2], jnp.float32), jnp.ones(1))
  np.testing.assert_allclose(np.asarray(quarter)[0, ..., 0], np.rot90(corner[0, ..., 0]), atol=1e-5)
