"""Priors p(z) that an adversarial autoencoder's latent discriminator matches the codes to.

Makhzani et al. 2015 (arXiv 1511.05644, sec. 2 and fig. 4) impose a standard Gaussian, or a
mixture of 10 Gaussians whose component k holds the codes of class k when the one-hot label
is fed to the discriminator; the semi-supervised AAE adds a categorical prior on y. All
functions are pure ``jax.numpy`` and safe inside ``jax.jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# The mixture of the public AAE code (hwalsuklee/tensorflow-mnist-AAE, prior.gaussian_mixture):
# component k is N(0, diag(0.5^2, 0.1^2)) rotated by 2 pi k / K and shifted 1.4 along that angle.
MIXTURE_SHIFT = 1.4
MIXTURE_STD = (0.5, 0.1)


def gaussian(key: jax.Array, num: int, latent_dim: int) -> jax.Array:
  """f32[num, latent_dim] draws of N(0, I)."""
  return jax.random.normal(key, (num, latent_dim), jnp.float32)


def mixture(key: jax.Array, labels: jax.Array, latent_dim: int, num_components: int) -> jax.Array:
  """Draws of the mixture-of-Gaussians prior, component ``labels[i]`` for draw i.

  Each pair of dimensions (2j, 2j+1) is an independent 2-D mixture: component k is
  N(0, diag(0.5^2, 0.1^2)) rotated by angle 2 pi k / K and moved 1.4 along that angle, so the
  K components form a flower around the origin (Makhzani et al. 2015, fig. 4; the public code's
  ``gaussian_mixture``). Draw labels uniformly for the unconditional mixture.

  Args:
    key: typed PRNG key.
    labels: i32[num] component of each draw, in [0, num_components).
    latent_dim: even size of z.
    num_components: K (10 for MNIST's classes).

  Returns:
    f32[num, latent_dim].

  Raises:
    ValueError: an odd ``latent_dim``.
  """
  if latent_dim % 2:
    raise ValueError(f"the mixture prior pairs dimensions, so latent_dim must be even (got {latent_dim})")
  num = labels.shape[0]
  noise = jax.random.normal(key, (num, latent_dim // 2, 2), jnp.float32) * jnp.asarray(MIXTURE_STD, jnp.float32)
  angle = (2.0 * jnp.pi / num_components) * labels.astype(jnp.float32)[:, None]
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  x = noise[..., 0] * cos - noise[..., 1] * sin + MIXTURE_SHIFT * cos
  y = noise[..., 0] * sin + noise[..., 1] * cos + MIXTURE_SHIFT * sin
  return jnp.stack([x, y], axis=-1).reshape(num, latent_dim)


def mixture_means(latent_dim: int, num_components: int) -> jax.Array:
  """f32[num_components, latent_dim]: the centre of each mixture component (see ``mixture``)."""
  angle = 2.0 * jnp.pi * jnp.arange(num_components, dtype=jnp.float32) / num_components
  centre = MIXTURE_SHIFT * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
  return jnp.tile(centre, (1, latent_dim // 2))


def categorical(key: jax.Array, num: int, num_classes: int) -> jax.Array:
  """f32[num, num_classes] one-hot draws of the uniform categorical prior Cat(1/K) on y."""
  return jax.nn.one_hot(jax.random.randint(key, (num,), 0, num_classes), num_classes, dtype=jnp.float32)


def gaussian_log_density(z: jax.Array) -> jax.Array:
  """f32[batch]: log N(z; 0, I) of f32[batch, d] codes (nats)."""
  d = z.shape[-1]
  return -0.5 * jnp.sum(z * z, -1) - 0.5 * d * jnp.log(2.0 * jnp.pi)


def mixture_log_density(z: jax.Array, num_components: int) -> jax.Array:
  """f32[batch]: log of the density of ``mixture`` (components equally likely) at f32[batch, d] codes.

  Each component's density is the product over dimension pairs of the rotated, shifted 2-D
  Gaussian that ``mixture`` draws from; the mixture is their log-mean-exp.
  """
  num, d = z.shape
  pairs = z.reshape(num, 1, d // 2, 2)
  angle = 2.0 * jnp.pi * jnp.arange(num_components, dtype=jnp.float32) / num_components
  cos, sin = jnp.cos(angle)[None, :, None], jnp.sin(angle)[None, :, None]
  px, py = pairs[..., 0] - MIXTURE_SHIFT * cos, pairs[..., 1] - MIXTURE_SHIFT * sin
  u, v = px * cos + py * sin, -px * sin + py * cos       # rotate back by -angle
  sx, sy = MIXTURE_STD
  log_pair = (-0.5 * (u / sx) ** 2 - 0.5 * (v / sy) ** 2 - jnp.log(2.0 * jnp.pi * sx * sy))
  per_component = jnp.sum(log_pair, -1)                   # [batch, K]
  return jax.scipy.special.logsumexp(per_component, axis=-1) - jnp.log(num_components)
