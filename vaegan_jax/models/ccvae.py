"""The networks of the CCVAE (Joy, Schmon, Torr, Siddharth, Rainforth, ICLR 2021).

From the official code:

* ``ConvEncoder``: 64x64 images -> four 4x4 stride-2 convolutions (32, 32, 64, 128) and a 4x4
  valid one (256) to 1x1, ReLU, one dense layer to (mu, log variance) of q(z|x); the scale is
  ``max(softplus(h), 1e-3)`` as in the code.
* ``ConvDecoder``: z -> dense 256 -> 4x4x128 -> four x2 upsamplings (64, 32, 32, channels),
  ReLU between, sigmoid pixel means in [0, 1] (the Laplace likelihood's location).
* ``CharacteristicClassifier``: q(y|z_c), diagonal: label i's logit reads only block i of z_c.
* ``ConditionalPrior``: p(z_c|y), a learnable location (initialised at +2 for y=1, -2 for
  y=0) and softplus scale per label and block dimension.

For 28x28 digits the encoder and decoder are ``mlp.MLPEncoder`` / ``mlp.MLPDecoder``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaegan_jax.models import layers
from vaegan_jax.models.layers import SubpixelUpsample

MIN_SCALE = 1e-3  # the official code clamps every softplus scale at this value


class ConvEncoder(nn.Module):
  """q(z|x) of the official CCVAE code for 64x64 images.

  Attributes:
    latent_dim: size of z = [z_c | z_\\c] (45 for the 18 CelebA labels).
    features: channels of the four stride-2 convolutions, then the 1x1 one.
    dtype: computation dtype; parameters are f32.
  """

  latent_dim: int = 45
  features: tuple[int, ...] = (32, 32, 64, 128, 256)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:  # pylint: disable=unused-argument
    """f32[batch, 64, 64, c] in [-1, 1] -> (mu, logvar), each f32[batch, latent_dim].

    Raises:
      ValueError: images that are not 64x64 (the last 4x4 convolution must reach 1x1).
    """
    if x.shape[1:3] != (64, 64):
      raise ValueError(f"the CCVAE conv encoder takes 64x64 images, not {x.shape[1:3]}: use "
                       "--config.ccvae.networks=mlp for other sizes")
    h = x.astype(self.dtype)
    for f in self.features[:-1]:
      h = nn.relu(nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), dtype=self.dtype,
                          conv_general_dilated=layers.conv_general_dilated)(h))  # input gradient without zero dilation
    h = nn.relu(nn.Conv(self.features[-1], (4, 4), padding="VALID", dtype=self.dtype)(h))
    h = nn.Dense(2 * self.latent_dim, dtype=self.dtype)(h.reshape(h.shape[0], -1)).astype(jnp.float32)
    scale = jnp.maximum(jax.nn.softplus(h[:, self.latent_dim:]), MIN_SCALE)
    return h[:, :self.latent_dim], 2.0 * jnp.log(scale)


class ConvDecoder(nn.Module):
  """p(x|z) of the official CCVAE code: pixel means in [0, 1] of 64x64 images.

  The code's transposed convolutions become ``SubpixelUpsample`` layers (a superset of them;
  see there why); its first one, 1x1 -> 4x4, is exactly a dense layer to 4x4x128.

  Attributes:
    image_shape: (64, 64, channels).
    features: channels after the dense layers (256, then 4x4x``features[1]``) and of the
      upsamplings before the last (which has ``channels``).
    dtype: computation dtype; parameters are f32.
  """

  image_shape: tuple[int, int, int] = (64, 64, 3)
  features: tuple[int, ...] = (256, 128, 64, 32, 32)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:  # pylint: disable=unused-argument
    """f32[batch, latent] -> f32[batch, 64, 64, channels] pixel means in [0, 1]."""
    h = nn.relu(nn.Dense(self.features[0], dtype=self.dtype)(z.astype(self.dtype)))
    h = nn.relu(nn.Dense(16 * self.features[1], dtype=self.dtype)(h)).reshape(z.shape[0], 4, 4, self.features[1])
    for f in self.features[2:]:
      h = nn.relu(SubpixelUpsample(f, dtype=self.dtype)(h))
    h = SubpixelUpsample(self.image_shape[-1], dtype=self.dtype)(h)
    return jax.nn.sigmoid(h.astype(jnp.float32))


class CharacteristicClassifier(nn.Module):
  """q(y|z_c): independent Bernoulli logits, label i's read from block i of z_c only.

  ``logit_i = sum_j w_ij z_c[i, j] + b_i`` (the official ``Diagonal`` layer for blocks of one;
  w initialised to 1, b to 0), so d logit_i / d z_c[k] = 0 for every k outside block i.

  Attributes:
    num_labels: L binary labels.
    block_dim: d, the size of each label's block of z_c (1 in the official code).
  """

  num_labels: int
  block_dim: int = 1

  @nn.compact
  def __call__(self, z_c: jax.Array, train: bool = False) -> jax.Array:  # pylint: disable=unused-argument
    """f32[batch, L * d] -> f32[batch, L] logits of p(y_i = 1)."""
    w = self.param("weight", nn.initializers.ones, (self.num_labels, self.block_dim))
    b = self.param("bias", nn.initializers.zeros, (self.num_labels,))
    return jnp.sum(z_c.reshape(z_c.shape[0], self.num_labels, self.block_dim) * w, -1) + b


class ConditionalPrior(nn.Module):
  """p(z_c|y): per label and block dimension, N(loc_y, scale_y^2) with learnable loc and scale.

  Locations start at +2 (y=1) and -2 (y=0), raw scales at 1 (softplus 1.31), as in the code.

  Attributes:
    num_labels: L binary labels.
    block_dim: d, the size of each label's block of z_c.
  """

  num_labels: int
  block_dim: int = 1

  @nn.compact
  def __call__(self, y: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:  # pylint: disable=unused-argument
    """f32[batch, L] labels in {0, 1} -> (loc, scale), each f32[batch, L * d]; scale >= 1e-3."""
    shape = (self.num_labels, self.block_dim)
    loc_true = self.param("loc_true", nn.initializers.constant(2.0), shape)
    loc_false = self.param("loc_false", nn.initializers.constant(-2.0), shape)
    scale_true = self.param("scale_true", nn.initializers.ones, shape)
    scale_false = self.param("scale_false", nn.initializers.ones, shape)
    y = y.astype(jnp.float32)[..., None]
    loc = y * loc_true + (1.0 - y) * loc_false
    scale = jnp.maximum(jax.nn.softplus(y * scale_true + (1.0 - y) * scale_false), MIN_SCALE)
    return loc.reshape(y.shape[0], -1), scale.reshape(y.shape[0], -1)
