"""Pure loss functions of the VAE/GAN family.

Every function works per example and returns ``f32[batch]`` (or a scalar where the
docstring says so); callers reduce explicitly. Nothing here reads global state, so each
function can be tested against an independent NumPy reference and used inside ``jax.jit``.

Sign convention for the GAN terms (Larsen et al. 2016, Algorithm 1, written as losses to
*minimise*): ``L_GAN`` is the discriminator's binary cross-entropy, i.e. the negative of the
paper's ``log Dis(x) + log(1 - Dis(Dec(z))) + log(1 - Dis(Dec(z_p)))``. The discriminator
minimises ``L_GAN``; the decoder minimises ``gamma * L_llike - L_GAN`` ("minimax") or the
non-saturating ``BCE(Dis(Dec(.)), 1)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _sum_per_example(x: jax.Array) -> jax.Array:
  """Sums all axes but the first: f32[batch, ...] -> f32[batch]."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def kl_divergence(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mu, exp(logvar)) || N(0, I)) per example, summed over latent dimensions.

  Implements L_prior of Larsen et al. 2016 (eq. 2), the closed form of Kingma & Welling
  2014 (appendix B): ``0.5 * sum(exp(logvar) + mu**2 - 1 - logvar)``.

  Args:
    mu: f32[batch, latent] posterior means.
    logvar: f32[batch, latent] posterior log-variances (natural log), any real value.

  Returns:
    f32[batch], nats, >= 0.

  Raises:
    ValueError: if ``mu`` and ``logvar`` differ in shape.
  """
  if mu.shape != logvar.shape:
    raise ValueError(f"mu {mu.shape} and logvar {logvar.shape} must have the same shape")
  return 0.5 * _sum_per_example(jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar)


def gaussian_nll(x: jax.Array, mean: jax.Array, log_scale: float | jax.Array = 0.0) -> jax.Array:
  """Negative log-likelihood of ``x`` under N(mean, exp(log_scale)**2), summed per example.

  With ``log_scale = 0`` this is the identity-covariance Gaussian that Larsen et al. 2016
  (eq. 6) put on the discriminator features Dis_l (L_llike^Dis_l); on pixels it is the
  element-wise VAE reconstruction term. The constant ``0.5 * log(2 pi)`` per element is
  included, so the value is a true NLL in nats.

  Args:
    x: f32[batch, ...] observations (pixels in [-1, 1], or features of any range).
    mean: f32[batch, ...] predicted means, same shape as ``x``.
    log_scale: natural log of the standard deviation; a scalar or broadcastable to ``x``.

  Returns:
    f32[batch], nats.

  Raises:
    ValueError: if ``x`` and ``mean`` differ in shape.
  """
  if x.shape != mean.shape:
    raise ValueError(f"x {x.shape} and mean {mean.shape} must have the same shape")
  log_scale = jnp.broadcast_to(jnp.asarray(log_scale, x.dtype), x.shape)
  z = (x - mean) * jnp.exp(-log_scale)
  return _sum_per_example(0.5 * jnp.square(z) + log_scale + _HALF_LOG_2PI)


def sigmoid_bce(logits: jax.Array, target: float) -> jax.Array:
  """Binary cross-entropy of ``sigmoid(logits)`` against a constant label, per example.

  ``-target * log(sigmoid(l)) - (1 - target) * log(1 - sigmoid(l))`` computed stably by
  ``optax.sigmoid_binary_cross_entropy``.

  Args:
    logits: f32[batch] or f32[batch, 1] discriminator logits, any real value.
    target: the label, 1.0 for "real" and 0.0 for "generated".

  Returns:
    f32[batch], nats, >= 0.
  """
  logits = logits.reshape(logits.shape[0], -1)
  labels = jnp.full_like(logits, target)
  return _sum_per_example(optax.sigmoid_binary_cross_entropy(logits, labels))


def gan_loss(logits_real: jax.Array, logits_generated: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Discriminator loss L_GAN and its two balancing costs (Larsen et al. 2016, eq. 8).

  ``L_GAN = mean BCE(Dis(x), 1) + sum_g mean BCE(Dis(g), 0)`` over every generated set g
  (reconstructions ``Dec(z)`` and prior samples ``Dec(z_p)`` for VAE/GAN; prior samples only
  for the GAN), i.e. the negative of the paper's log-likelihood form.

  Args:
    logits_real: f32[batch] or f32[batch, 1] logits on data.
    logits_generated: tuple of f32[batch] or f32[batch, 1] logits, one per generated set.

  Returns:
    (loss, real_cost, fake_cost), all f32 scalars in nats: ``loss`` is L_GAN;
    ``real_cost = mean BCE(Dis(x), 1)``; ``fake_cost`` is the mean over the generated sets of
    ``mean BCE(Dis(g), 0)``. The costs are what equilibrium balancing compares.
  """
  real_cost = jnp.mean(sigmoid_bce(logits_real, 1.0))
  fake_costs = [jnp.mean(sigmoid_bce(l, 0.0)) for l in logits_generated]
  loss = real_cost + sum(fake_costs)
  fake_cost = sum(fake_costs) / len(fake_costs)
  return loss, real_cost, fake_cost


def generator_adversarial_loss(logits_generated: tuple[jax.Array, ...], kind: str) -> jax.Array:
  """The decoder's adversarial term, a scalar to minimise.

  Args:
    logits_generated: tuple of f32[batch] or f32[batch, 1] discriminator logits on generated
      images (reconstructions and/or prior samples).
    kind: ``"minimax"``: ``-sum_g mean BCE(Dis(g), 0)``, the ``-L_GAN`` of Larsen et al.
      2016 Algorithm 1 (the decoder's part of it); ``"non_saturating"``:
      ``sum_g mean BCE(Dis(g), 1)`` (Goodfellow et al. 2014, sec. 3), the DCGAN choice.

  Returns:
    f32 scalar, nats.

  Raises:
    ValueError: for an unknown ``kind``.
  """
  if kind == "minimax":
    return -sum(jnp.mean(sigmoid_bce(l, 0.0)) for l in logits_generated)
  if kind == "non_saturating":
    return sum(jnp.mean(sigmoid_bce(l, 1.0)) for l in logits_generated)
  raise ValueError(f"generator loss kind {kind!r} is not one of 'minimax', 'non_saturating'")


def balance_masks(real_cost: jax.Array, fake_cost: jax.Array, equilibrium: float, margin: float) -> tuple[jax.Array, jax.Array]:
  """Equilibrium balancing of decoder and discriminator updates, as traced 0/1 masks.

  The rule of Larsen et al.'s original code (and the popular PyTorch port): if either of the
  discriminator's costs is below ``equilibrium - margin`` the discriminator is winning, so
  its update is skipped; if either is above ``equilibrium + margin`` the decoder is losing
  badly, so the decoder's update is skipped; if both would be skipped, both are updated.
  Pure ``jnp`` logic: safe inside ``jax.jit`` (no Python branch on device values).

  Args:
    real_cost: f32 scalar, mean BCE(Dis(x), 1) in nats.
    fake_cost: f32 scalar, mean BCE(Dis(generated), 0) in nats.
    equilibrium: target cost, 0.68 in the original (close to log 2 = 0.693).
    margin: half-width of the tolerated band, 0.35 in the original.

  Returns:
    (update_decoder, update_discriminator): f32 scalars, each 0.0 or 1.0.
  """
  skip_dis = (real_cost < equilibrium - margin) | (fake_cost < equilibrium - margin)
  skip_dec = (real_cost > equilibrium + margin) | (fake_cost > equilibrium + margin)
  both = skip_dis & skip_dec
  update_dec = jnp.logical_or(~skip_dec, both).astype(jnp.float32)
  update_dis = jnp.logical_or(~skip_dis, both).astype(jnp.float32)
  return update_dec, update_dis


def bernoulli_nll(x: jax.Array, logits: jax.Array) -> jax.Array:
  """Negative log-likelihood of ``x`` under independent Bernoullis with ``logits``, summed per example.

  The reconstruction term of Kingma & Welling 2014 on binarised-style data (their MNIST
  experiments, and the 784-400-20 VAE that TVAE builds on): ``-sum(x log s + (1-x) log(1-s))``
  with ``s = sigmoid(logits)``, computed stably from the logits. Grey levels in [0, 1] are
  allowed as soft targets (the usual continuous relaxation).

  Args:
    x: f32[batch, ...] targets in [0, 1].
    logits: f32[batch, ...] decoder logits, same shape.

  Returns:
    f32[batch], nats, >= 0 (0 only for 0/1 targets predicted with certainty).

  Raises:
    ValueError: if the shapes differ.
  """
  if x.shape != logits.shape:
    raise ValueError(f"x {x.shape} and logits {logits.shape} must have the same shape")
  return _sum_per_example(optax.sigmoid_binary_cross_entropy(logits, x))


def triplet_loss(anchor: jax.Array, positive: jax.Array, negative: jax.Array, margin: float) -> jax.Array:
  """Hinge triplet loss on squared Euclidean distances, per triplet.

  TVAE (Ishfaq, Hoogi, Rubin 2018, sec. 2; Schroff et al. 2015, eq. 1) applied to posterior
  means: ``max(0, ||a - p||^2 - ||a - n||^2 + margin)``, where the positive shares the
  anchor's class and the negative does not.

  Args:
    anchor, positive, negative: f32[batch, latent] embeddings (TVAE: mu of q(z|x)).
    margin: how much farther, in squared distance, the negative must be (0.2 in TVAE), >= 0.

  Returns:
    f32[batch], >= 0; 0 exactly when ``||a - n||^2 >= ||a - p||^2 + margin``.

  Raises:
    ValueError: if the three shapes differ.
  """
  if not anchor.shape == positive.shape == negative.shape:
    raise ValueError(f"anchor {anchor.shape}, positive {positive.shape} and negative {negative.shape} "
                     "must have the same shape")
  d_pos = jnp.sum(jnp.square(anchor - positive), axis=-1)
  d_neg = jnp.sum(jnp.square(anchor - negative), axis=-1)
  return jnp.maximum(0.0, d_pos - d_neg + margin)


def gaussian_kl(mu_q: jax.Array, logvar_q: jax.Array, mu_p: jax.Array, logvar_p: jax.Array) -> jax.Array:
  """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per example, summed over dimensions.

  The closed form for diagonal Gaussians, ``0.5 * sum(logvar_p - logvar_q + (exp(logvar_q) +
  (mu_q - mu_p)**2) / exp(logvar_p) - 1)``; the CCVAE's KL(q(z|x) || p(z|y)) against its
  conditional prior (the official code's ``compute_kl``). ``mu_p = logvar_p = 0`` gives
  ``kl_divergence``.

  Args:
    mu_q, logvar_q: f32[batch, latent] posterior mean and natural-log variance.
    mu_p, logvar_p: f32[batch, latent] prior mean and natural-log variance.

  Returns:
    f32[batch], nats, >= 0.

  Raises:
    ValueError: if the four shapes differ.
  """
  if not mu_q.shape == logvar_q.shape == mu_p.shape == logvar_p.shape:
    raise ValueError(f"mu_q {mu_q.shape}, logvar_q {logvar_q.shape}, mu_p {mu_p.shape} and logvar_p "
                     f"{logvar_p.shape} must have the same shape")
  return 0.5 * _sum_per_example(
      logvar_p - logvar_q + (jnp.exp(logvar_q) + jnp.square(mu_q - mu_p)) * jnp.exp(-logvar_p) - 1.0)


def laplace_nll(x: jax.Array, loc: jax.Array, scale: float = 1.0) -> jax.Array:
  """Negative log-likelihood of ``x`` under Laplace(loc, scale), summed per example.

  ``sum(|x - loc| / scale + log(2 scale))``: the CCVAE's image likelihood (the official code's
  ``Laplace(recon, 1)`` on pixels in [0, 1]).

  Args:
    x: f32[batch, ...] observations (pixels in [0, 1] for the CCVAE).
    loc: f32[batch, ...] predicted locations, same shape.
    scale: the Laplace scale, > 0.

  Returns:
    f32[batch], nats.

  Raises:
    ValueError: if the shapes differ or ``scale <= 0``.
  """
  if x.shape != loc.shape:
    raise ValueError(f"x {x.shape} and loc {loc.shape} must have the same shape")
  if scale <= 0:
    raise ValueError(f"the Laplace scale must be positive, got {scale}")
  return _sum_per_example(jnp.abs(x - loc) / scale + math.log(2.0 * scale))


def bernoulli_log_prob(y: jax.Array, logits: jax.Array) -> jax.Array:
  """log q(y) of binary labels under independent Bernoullis, summed over the last axis.

  Args:
    y: f32[..., L] labels in {0, 1}.
    logits: f32[..., L] logits of p(y_i = 1), same shape.

  Returns:
    f32[...], nats, <= 0.
  """
  return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, y), axis=-1)


def log_mean_exp(x: jax.Array, axis: int = 0) -> jax.Array:
  """log(mean(exp(x))) along ``axis``, computed stably as ``logsumexp(x) - log n``.

  The CCVAE's Monte Carlo estimate of log q(y|x) = log E_q(z|x)[q(y|z_c)] from K samples of
  log q(y|z_c) (the official code's ``classifier_loss``, K = 100).

  Args:
    x: f32[..., n, ...] log-values, any finite reals.
    axis: the sample axis.

  Returns:
    f32 with ``axis`` removed.
  """
  return jax.nn.logsumexp(x, axis=axis) - math.log(x.shape[axis])
