"""Layers the Larsen et al. networks need beyond flax.linen's own."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# For a 5x5 stride-2 'SAME' transposed convolution, output pixel 2a+p (phase p) reads input
# pixels a-1, a, a+1 through these kernel taps (5 = a zero tap), per spatial dimension.
_PHASE_TAPS = np.array([[1, 3, 5], [0, 2, 4]])


class SubpixelConvTranspose(nn.Module):
  """A 5x5, stride-2, 'SAME' transposed convolution computed as conv + depth-to-space.

  Same parameters and outputs as ``flax.linen.ConvTranspose(features, (5, 5), strides=(2, 2),
  padding='SAME', use_bias=False)`` (tests check both to float tolerance), but computed as a
  3x3 stride-1 convolution to ``4 * features`` channels followed by depth-to-space (Shi et al.
  2016, "sub-pixel convolution"). The 3x3 kernel is gathered from the 5x5 one, so gradients
  land on the same 5x5 kernel. Why: on XLA:CPU the weight gradient of ``ConvTranspose`` is
  about 40x slower than its forward pass (measured in ../shared/DESIGN.md), which made the
  whole VAE/GAN step 4x slower; on GPU both forms compile to ordinary convolutions.

  Attributes:
    features: output channels.
    dtype: computation dtype (parameters stay ``param_dtype``).
    param_dtype: parameter dtype.
  """

  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Upsamples f[batch, h, w, c_in] to f[batch, 2h, 2w, features] (dtype ``self.dtype``)."""
    c_in = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (5, 5, c_in, self.features), self.param_dtype)
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index 5 is the zero tap
    taps = jnp.asarray(_PHASE_TAPS)
    # k3[py, dy, px, dx, c_in, c_out] = padded[taps[py, dy], taps[px, dx]]
    k3 = padded[taps[:, :, None, None], taps[None, None, :, :]]
    k3 = jnp.transpose(k3, (1, 3, 4, 0, 2, 5)).reshape(3, 3, c_in, 4 * self.features)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), k3.astype(self.dtype), window_strides=(1, 1),
        padding=((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    n, h, w, _ = y.shape
    y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, 2 * h, 2 * w, self.features)


class SubpixelUpsample(nn.Module):
  """x2 upsampling by a 3x3 convolution to ``4 * features`` channels and depth-to-space (Shi et al. 2016).

  Stands in for a 4x4, stride-2, padding-1 transposed convolution (PyTorch's
  ``ConvTranspose2d(c_in, features, 4, 2, 1)``, the CCVAE decoder's layer): each output pixel
  of that layer reads a 2x2 input neighbourhood, which the 3x3 window contains, so every such
  transposed convolution is one of these layers (the converse does not hold: this one has
  36 rather than 16 weights per channel pair). Same reason as ``SubpixelConvTranspose``:
  XLA:CPU's transposed-convolution weight gradient is about 40x slower than its forward pass.

  Attributes:
    features: output channels.
    dtype: computation dtype (parameters are f32).
  """

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Upsamples f[batch, h, w, c_in] to f[batch, 2h, 2w, features] (dtype ``self.dtype``)."""
    y = nn.Conv(4 * self.features, (3, 3), padding="SAME", dtype=self.dtype)(x)
    n, h, w, _ = y.shape
    y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, 2 * h, 2 * w, self.features)
