"""Learning-rate schedules: the original VAE/GAN code's annealing, epochs counted in images,
and runs saved before either existed (they must restore to exactly their old schedule)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.conftest import load_config
from vaegan_jax.config import base_config, from_json, to_json, validate
from vaegan_jax.methods import common


def _rates(schedule, steps):
  return np.array([float(schedule(jnp.int32(s))) for s in steps])


def _gamma_annealer(val_start, val_stop, t_max, gamma, t):
  """deeppy.train.annealers.GammaAnnealer.value (andersbll/deeppy), as Larsen et al.'s aegan.train calls it."""
  if t > 0:
    t = t / float(t_max)
  return val_start - t ** gamma * (val_start - val_stop)


def test_power_schedule_is_the_original_codes_annealer_per_16000_images():
  """aegan.train: learn_rate = GammaAnnealer(0.02, 1e-5, 150, gamma=0.75).value(epoch) / 64, one
  epoch of 250 batches of 64; the CelebA config follows it step for step."""
  c = load_config("vaegan_celeba", "")
  assert c.train.num_steps == 37_500 and c.train.batch_size == 64
  o = c.optim.decoder
  o.learning_rate = 0.02 / 64   # the code's exact starting rate (the config rounds it to 3e-4)
  schedule = common.learning_rate_schedule(o, steps_per_epoch=71, batch_size=64, num_steps=c.train.num_steps)
  steps = [0, 1, 249, 250, 251, 499, 500, 10_000, 18_749, 18_750, 37_249, 37_250, 37_499]
  want = [_gamma_annealer(0.02, 1e-5, 150, 0.75, s // 250) / 64 for s in steps]
  # f32: the last rates are a difference of two numbers near 3e-4 (atol 1e-10 = 3e-7 of the start)
  np.testing.assert_allclose(_rates(schedule, steps), want, rtol=2e-6, atol=1e-10)
  # Not the "x0.75 per epoch" it was once read as: halfway, the rate is still 0.41 of the start.
  assert _rates(schedule, [18_750])[0] / (0.02 / 64) == pytest.approx(1 - 0.5 ** 0.75 * (1 - 1e-5 / 0.02), rel=1e-5)


@pytest.mark.parametrize("name", ["vaegan_celeba", "vae_celeba", "gan_celeba"])
def test_celeba_cpu_variant_anneals_over_its_own_steps(name):
  c = load_config(name, "cpu")
  validate(c)
  assert c.train.num_steps == 1775 and tuple(c.model.encoder_features) == (32, 64, 128)
  run_epochs = 1775 * 64 / 16_000   # 7.1 of the code's epochs
  for network in ("encoder", "decoder", "discriminator"):
    o = c.optim[network]
    schedule = common.learning_rate_schedule(o, 71, c.train.batch_size, c.train.num_steps)
    steps = np.arange(0, 1775, 5)
    rates = _rates(schedule, steps)
    epochs = steps * 64 // 16_000
    want = 3e-4 - (epochs / run_epochs) ** 0.75 * (3e-4 - 1e-5 / 64)
    np.testing.assert_allclose(rates, want, rtol=1e-5)
    assert np.all(np.diff(rates) <= 0) and rates[-1] > 1e-5 / 64
    # Each rate holds for 250 steps: 16,000 images, not the subset's pass of 71 steps.
    assert len(set(rates[:50].tolist())) == 1 and rates[49] > rates[50]   # steps 245 / 250


def test_exponential_decay_per_images_changes_at_the_first_step_past_the_epoch():
  """One decay per 162,770 images at batch 64: 2,543 steps are 162,752 images, 2,544 are 162,816."""
  o = base_config().optim.encoder
  o.decay_epoch_images = 162_770
  schedule = common.learning_rate_schedule(o, steps_per_epoch=71, batch_size=64)
  got = _rates(schedule, [0, 2543, 2544, 5086, 5087, 100_000])
  np.testing.assert_allclose(got, [3e-4, 3e-4, 2.25e-4, 2.25e-4, 3e-4 * 0.75 ** 2, 1e-5], rtol=1e-6)


def test_runs_saved_before_the_new_keys_keep_their_schedule_bit_for_bit():
  """A saved config without schedule / decay_power / decay_epoch_images restores to per-pass
  exponential decay, the exact optax schedule the run was trained with."""
  saved = to_json(load_config("vaegan_celeba", ""))
  for o in saved["optim"].values():
    for key in ("schedule", "decay_power", "decay_epoch_images"):
      del o[key]
    o["min_learning_rate"] = 1e-5
  restored = from_json(saved)
  validate(restored)
  o = restored.optim.encoder
  assert (o.schedule, o.decay_epoch_images) == ("exponential", 0)
  old = optax.exponential_decay(init_value=3e-4, transition_steps=71, decay_rate=0.75, staircase=True, end_value=1e-5)
  steps = np.arange(0, 2000, 7)
  np.testing.assert_array_equal(_rates(common.learning_rate_schedule(o, 71, 64, 37_500), steps),
                                np.array([float(old(s)) for s in steps]))


def test_schedule_settings_are_checked():
  c = base_config()
  c.optim.decoder.schedule = "cosine"
  with pytest.raises(ValueError, match=r"optim\.decoder\.schedule='cosine' is not one of"):
    validate(c)
  c = base_config()
  c.optim.encoder.decay_epoch_images = -1
  with pytest.raises(ValueError, match=r"optim\.encoder\.decay_epoch_images=-1 must be a number of images >= 0"):
    validate(c)
  c = base_config()
  c.optim.encoder.schedule, c.optim.encoder.min_learning_rate = "power", 1e-3
  with pytest.raises(ValueError, match=r"optim\.encoder\.min_learning_rate=0\.001 must be at most"):
    validate(c)
  c = base_config()
  c.optim.encoder.schedule = "power"
  with pytest.raises(ValueError, match="num_steps"):
    common.learning_rate_schedule(c.optim.encoder, 71, 64)
  c.optim.encoder.decay_epoch_images = 16_000
  with pytest.raises(ValueError, match="batch size"):
    common.learning_rate_schedule(c.optim.encoder, 71, num_steps=100)


def test_the_cpu_variant_is_refused_where_it_does_not_exist():
  with pytest.raises(ValueError, match=r":cpu variant exists for configs/\{vaegan,vae,gan\}_celeba.py only"):
    load_config("tvae_mnist", "cpu")
