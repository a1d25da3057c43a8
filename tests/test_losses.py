"""Loss functions against NumPy references computed another way."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from vaegan_jax import losses


def test_kl_matches_numpy_in_sigma_form_and_numerical_integration(rng):
  mu = rng.normal(size=(5, 7)).astype(np.float32)
  logvar = rng.normal(size=(5, 7)).astype(np.float32)
  sigma = np.exp(0.5 * logvar.astype(np.float64))
  # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2, written with s, not logvar.
  reference = np.sum(-np.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5, axis=1)
  np.testing.assert_allclose(losses.kl_divergence(jnp.asarray(mu), jnp.asarray(logvar)), reference, rtol=1e-5)
  # One dimension by quadrature of q log(q/p).
  m, s = 0.7, 0.4
  x = np.linspace(m - 12 * s, m + 12 * s, 200_001)
  q = np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
  p = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
  quad = np.trapezoid(q * np.log(q / p), x)
  got = losses.kl_divergence(jnp.array([[m]]), jnp.array([[2 * math.log(s)]]))[0]
  assert abs(float(got) - quad) < 1e-5


def test_kl_is_zero_at_the_prior_and_rejects_mismatched_shapes():
  np.testing.assert_allclose(losses.kl_divergence(jnp.zeros((3, 4)), jnp.zeros((3, 4))), 0.0, atol=1e-7)
  with pytest.raises(ValueError, match="same shape"):
    losses.kl_divergence(jnp.zeros((3, 4)), jnp.zeros((3, 5)))


@pytest.mark.parametrize("log_scale", [0.0, -2.3, 0.5])
def test_gaussian_nll_matches_numpy_log_density(rng, log_scale):
  s = math.exp(log_scale)
  mean = rng.normal(size=(4, 3, 5, 2)).astype(np.float32)
  x = (mean + 3 * s * rng.normal(size=mean.shape)).astype(np.float32)
  density = np.exp(-0.5 * ((x.astype(np.float64) - mean) / s) ** 2) / (s * math.sqrt(2 * math.pi))
  reference = -np.log(density).reshape(4, -1).sum(axis=1)
  np.testing.assert_allclose(losses.gaussian_nll(jnp.asarray(x), jnp.asarray(mean), log_scale), reference, rtol=2e-5)


def test_gaussian_nll_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="same shape"):
    losses.gaussian_nll(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_sigmoid_bce_matches_numpy():
  logits = np.array([-30.0, -2.0, 0.0, 1.5, 30.0], np.float32)
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  np.testing.assert_allclose(losses.sigmoid_bce(jnp.asarray(logits), 1.0), -np.log(p), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.sigmoid_bce(jnp.asarray(logits)[:4], 0.0), -np.log(1 - p[:4]), rtol=1e-5, atol=1e-6)
  # -log(1 - sigmoid(l)) = log(1 + e^l), exact also where 1 - p underflows.
  np.testing.assert_allclose(losses.sigmoid_bce(jnp.asarray(logits), 0.0), np.logaddexp(0, logits.astype(np.float64)),
                             rtol=1e-5)


def test_gan_loss_is_the_negative_paper_objective(rng):
  real = rng.normal(size=6).astype(np.float32)
  recon = rng.normal(size=6).astype(np.float32)
  prior = rng.normal(size=6).astype(np.float32)
  sig = lambda l: 1.0 / (1.0 + np.exp(-l.astype(np.float64)))
  # Larsen et al. eq. 8: L_GAN = log Dis(x) + log(1 - Dis(Dec(z))) + log(1 - Dis(Dec(z_p))).
  paper = np.mean(np.log(sig(real))) + np.mean(np.log(1 - sig(recon))) + np.mean(np.log(1 - sig(prior)))
  loss, real_cost, fake_cost = losses.gan_loss(jnp.asarray(real), (jnp.asarray(recon), jnp.asarray(prior)))
  np.testing.assert_allclose(loss, -paper, rtol=1e-5)
  np.testing.assert_allclose(real_cost, -np.mean(np.log(sig(real))), rtol=1e-5)
  np.testing.assert_allclose(fake_cost, -(np.mean(np.log(1 - sig(recon))) + np.mean(np.log(1 - sig(prior)))) / 2, rtol=1e-5)


def test_generator_losses():
  gen = (jnp.array([0.3, -1.0]), jnp.array([2.0, 0.0]))
  sig = lambda l: 1.0 / (1.0 + np.exp(-np.asarray(l, np.float64)))
  minimax = sum(np.mean(np.log(1 - sig(g))) for g in gen)
  nonsat = -sum(np.mean(np.log(sig(g))) for g in gen)
  np.testing.assert_allclose(losses.generator_adversarial_loss(gen, "minimax"), minimax, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_adversarial_loss(gen, "non_saturating"), nonsat, rtol=1e-5)
  with pytest.raises(ValueError, match="minimax"):
    losses.generator_adversarial_loss(gen, "wgan")


@pytest.mark.parametrize("real_cost, fake_cost, expect_dec, expect_dis", [
    (0.69, 0.69, 1.0, 1.0),   # both in the band: update both
    (0.20, 0.69, 1.0, 0.0),   # Dis very good on real data: skip Dis
    (0.69, 0.20, 1.0, 0.0),   # Dis very good on fakes: skip Dis
    (1.20, 0.69, 0.0, 1.0),   # Dis bad on real data: Dec is "losing" nothing, skip Dec
    (0.69, 1.20, 0.0, 1.0),   # Dis fooled by fakes: skip Dec
    (0.20, 1.20, 1.0, 1.0),   # both would be skipped: update both
])
def test_balance_masks_from_hand_set_discriminator_outputs(real_cost, fake_cost, expect_dec, expect_dis):
  # Hand-set discriminator outputs whose costs are the requested values.
  d_real = math.exp(-real_cost)            # BCE(d, 1) = -log d
  d_fake = 1 - math.exp(-fake_cost)        # BCE(d, 0) = -log(1 - d)
  logit = lambda p: math.log(p / (1 - p))
  _, rc, fc = losses.gan_loss(jnp.full((4,), logit(d_real)), (jnp.full((4,), logit(d_fake)),))
  np.testing.assert_allclose([rc, fc], [real_cost, fake_cost], rtol=1e-4)
  dec, dis = losses.balance_masks(rc, fc, equilibrium=0.68, margin=0.35)
  assert (float(dec), float(dis)) == (expect_dec, expect_dis)
