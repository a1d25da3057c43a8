"""The fully connected VAE of Kingma & Welling 2014 that TVAE (Ishfaq et al. 2018) builds on.

784-400-20 on MNIST: one hidden ReLU layer of ``hidden`` units each way, a diagonal Gaussian
posterior and a Bernoulli decoder (logits). Any image size works: images are flattened.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def relu_layers(h: jax.Array, widths: Sequence[int], dtype: Any) -> jax.Array:
  """``nn.Dense(width)`` then ReLU for each width, called inside a module's ``nn.compact``
  ``__call__`` (the layers are that module's ``Dense_0``, ``Dense_1``, ...)."""
  for width in widths:
    h = nn.relu(nn.Dense(width, dtype=dtype)(h))
  return h


class MLPEncoder(nn.Module):
  """q(z|x): flattened images -> (mu, logvar) through ``hidden`` ReLU layers.

  Attributes:
    latent_dim: size of z (20 in TVAE).
    hidden: widths of the hidden layers ((400,) in TVAE).
    dtype: computation dtype; parameters are f32.
  """

  latent_dim: int = 20
  hidden: Sequence[int] = (400,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:  # pylint: disable=unused-argument
    """Encodes f32[batch, h, w, c] images in [-1, 1] into (mu, logvar), each f32[batch, latent_dim]."""
    h = relu_layers(x.reshape(x.shape[0], -1).astype(self.dtype), self.hidden, self.dtype)
    mu = nn.Dense(self.latent_dim, dtype=self.dtype, name="mu")(h)
    logvar = nn.Dense(self.latent_dim, dtype=self.dtype, name="logvar")(h)
    return mu.astype(jnp.float32), logvar.astype(jnp.float32)


class MLPDecoder(nn.Module):
  """p(x|z): latents -> Bernoulli logits of every pixel, through ``hidden`` ReLU layers.

  Attributes:
    image_shape: (height, width, channels) of the data.
    hidden: widths of the hidden layers, from z outwards ((400,) in TVAE).
    dtype: computation dtype; parameters are f32.
  """

  image_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (400,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:  # pylint: disable=unused-argument
    """Decodes f32[batch, latent] into f32[batch, h, w, c] logits (sigmoid gives pixel means in [0, 1])."""
    h = relu_layers(z.astype(self.dtype), self.hidden, self.dtype)
    logits = nn.Dense(math.prod(self.image_shape), dtype=self.dtype, name="logits")(h)
    return logits.reshape(z.shape[0], *self.image_shape).astype(jnp.float32)
