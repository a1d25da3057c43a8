"""The encoder, decoder and discriminator of Larsen et al. 2016, for any image size.

Architecture from the original code (``architectures.img64x64`` of
andersbll/autoencoding_beyond_pixels). At 64x64x3 with the default widths the networks are exactly
the paper's; for other sizes (28x28x1 MNIST) the same structure is used: stride-2
convolutions padded by 2 round odd sizes up (28 -> 14 -> 7 -> 4), and the decoder starts at
``ceil(H / 8) x ceil(W / 8)`` and centre-crops its output to ``H x W``. Padding follows the
PyTorch port (``Conv2d(..., 5, stride=2, padding=2)``, ``ConvTranspose2d(..., 5, stride=2,
padding=2, output_padding=1)``), so benchmarks/torch_vaegan.py computes the same function.

The three networks are separate Linen modules, so each has its own parameter tree and its
own optimizer.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaegan_jax.models import layers
from vaegan_jax.models.layers import SubpixelConvTranspose


def check_image_shape(image_shape: Sequence[int], features: dict[str, Sequence[int]]) -> None:
  """Raises ValueError unless these networks can take images of ``image_shape``.

  Each stride-2 layer halves the image (the encoder has ``len(encoder_features)``, the
  discriminator ``len(discriminator_features) - 1``, the decoder doubles ``len(decoder_features)``
  times), so the shorter side must be at least 2**layers pixels, or the deepest layers would
  convolve a 1x1 map; images have 1 (grey) or 3 (RGB) channels.

  Args:
    image_shape: (height, width, channels) of the dataset's images.
    features: {network name ("encoder", "decoder", "discriminator"): its ``features``}, for
      the networks that exist.
  """
  if len(image_shape) != 3 or image_shape[2] not in (1, 3):
    raise ValueError(f"images of shape {tuple(image_shape)} are not (height, width, 1 or 3 channels): "
                     "use a dataset of grey or RGB images")
  for name, channels in features.items():
    layers = len(channels) - (name == "discriminator")
    if min(image_shape[:2]) < 2 ** layers:
      raise ValueError(
          f"{image_shape[0]}x{image_shape[1]} images are too small for the {layers} stride-2 layers of the "
          f"{name} (they need at least {2 ** layers} px on each side): give --config.model.{name}_features "
          f"at most {max(1, int(math.log2(min(image_shape[:2]))))} entries"
          + (" after the first" if name == "discriminator" else ""))


def _strided_conv(features: int, dtype: Any, padding: str) -> nn.Conv:
  """5x5, stride 2, no bias. ``padding="pytorch"``: 2 on every side, PyTorch's ``Conv2d(c, features,
  5, 2, 2, bias=False)``, computed by ``layers.strided_conv`` (input gradient without zero
  dilation); ``"same"``: XLA's 'SAME' (1 before, 2 after on even sizes), the convention of runs
  saved before 2026-11-30. Output ``ceil(n / 2)`` for input ``n`` either way.
  """
  if padding == "same":
    return nn.Conv(features, (5, 5), strides=(2, 2), padding="SAME", use_bias=False, dtype=dtype)
  return nn.Conv(features, (5, 5), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False, dtype=dtype,
                 conv_general_dilated=layers.conv_general_dilated)


def _conv_transpose(features: int, dtype: Any, padding: str, index: int) -> nn.Module:
  """5x5, stride 2, doubling the size. ``"pytorch"``: ``ConvTranspose2d(c, features, 5, 2, 2,
  output_padding=1)`` (``layers.SubpixelConvTranspose``); ``"same"``: flax's ``ConvTranspose``
  with 'SAME' padding, the layer of runs saved before 2026-11-30, under the same parameter name
  (``SubpixelConvTranspose_<index>``) so that their checkpoints restore.
  """
  name = f"SubpixelConvTranspose_{index}"
  if padding == "same":
    return nn.ConvTranspose(features, (5, 5), strides=(2, 2), padding="SAME", use_bias=False, dtype=dtype,
                            name=name)
  return SubpixelConvTranspose(features, dtype=dtype, name=name)


def _batch_norm(train: bool, momentum: float, epsilon: float, dtype: Any) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, dtype=dtype)


class Encoder(nn.Module):
  """q(z|x): images to the mean and log-variance of a diagonal Gaussian posterior.

  ``len(features)`` x [conv 5x5 stride 2 (no bias), BatchNorm, ReLU], flatten,
  dense ``dense`` + BatchNorm + ReLU, two dense heads ``mu`` and ``logvar``.

  Attributes:
    latent_dim: size of z (128 in the paper).
    features: channels of the strided convolutions (64, 128, 256).
    dense: width of the hidden dense layer (1024 in the original code; the paper says 2048).
    bn_momentum, bn_epsilon: BatchNorm settings (0.9 and 1e-6 in the original).
    dtype: computation dtype; parameters are f32.
    padding: the stride-2 layers' padding, "pytorch" or "same" (``config.CONV_PADDINGS``, ``model.conv_padding``).
  """

  latent_dim: int = 128
  features: Sequence[int] = (64, 128, 256)
  dense: int = 1024
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-6
  dtype: Any = jnp.float32
  padding: str = "pytorch"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Encodes images.

    Args:
      x: f32[batch, height, width, channels] images in [-1, 1].
      train: use batch statistics (and update the running ones) when True.

    Returns:
      (mu, logvar): f32[batch, latent_dim] each.
    """
    h = x.astype(self.dtype)
    for f in self.features:
      h = _strided_conv(f, self.dtype, self.padding)(h)
      h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.Dense(self.dense, use_bias=False, dtype=self.dtype)(h)
    h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(h))
    mu = nn.Dense(self.latent_dim, dtype=self.dtype, name="mu")(h)
    logvar = nn.Dense(self.latent_dim, dtype=self.dtype, name="logvar")(h)
    return mu.astype(jnp.float32), logvar.astype(jnp.float32)


class Decoder(nn.Module):
  """p(x|z), also the GAN generator: latents to images in [-1, 1].

  dense ``ceil(H/8) * ceil(W/8) * features[0]`` + BatchNorm + ReLU, then per entry of
  ``features`` a 5x5 stride-2 transposed convolution + BatchNorm + ReLU (8 -> 64 px at
  64x64), a 5x5 convolution to ``channels``, a centre crop to ``H x W`` and tanh.

  Attributes:
    image_shape: (height, width, channels) of the data, taken from the dataset.
    features: channels of the transposed convolutions (256, 128, 32).
    bn_momentum, bn_epsilon, dtype, padding: as for ``Encoder``.
  """

  image_shape: Sequence[int] = (64, 64, 3)
  features: Sequence[int] = (256, 128, 32)
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-6
  dtype: Any = jnp.float32
  padding: str = "pytorch"

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    """Decodes latents.

    Args:
      z: f32[batch, latent_dim] latents.
      train: use batch statistics (and update the running ones) when True.

    Returns:
      f32[batch, height, width, channels] images in [-1, 1].
    """
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    h0, w0 = math.ceil(height / scale), math.ceil(width / scale)
    h = nn.Dense(h0 * w0 * self.features[0], use_bias=False, dtype=self.dtype)(z.astype(self.dtype))
    h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(h))
    h = h.reshape(z.shape[0], h0, w0, self.features[0])
    for i, f in enumerate(self.features):
      h = _conv_transpose(f, self.dtype, self.padding, i)(h)
      h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(h))
    h = nn.Conv(channels, (5, 5), padding="SAME", dtype=self.dtype)(h)
    top, left = (h.shape[1] - height) // 2, (h.shape[2] - width) // 2
    h = h[:, top:top + height, left:left + width, :]
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """Dis: images to a real/fake logit, plus the hidden representation Dis_l.

  conv 5x5 ``features[0]`` stride 1 + ReLU; per further entry a conv 5x5 stride 2 (no
  bias) + BatchNorm + ReLU; dense ``dense`` + BatchNorm + ReLU; dense 1 (the logit).
  Dis_l is the output of the last strided conv *before* its BatchNorm and ReLU, as in the
  original code: f32[batch, H/8, W/8, 256] at the default widths (16,384 features at 64x64).

  Attributes:
    features: (32, 128, 256, 256) in the paper.
    dense: 512 in the paper.
    bn_momentum, bn_epsilon, dtype, padding: as for ``Encoder``.
  """

  features: Sequence[int] = (32, 128, 256, 256)
  dense: int = 512
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-6
  dtype: Any = jnp.float32
  padding: str = "pytorch"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Scores images.

    Args:
      x: f32[batch, height, width, channels] images in [-1, 1].
      train: use batch statistics (and update the running ones) when True.

    Returns:
      (logits, dis_l): f32[batch] logits of "x is real" (apply a sigmoid for a
      probability) and f32[batch, ceil(H/8), ceil(W/8), features[-1]] features Dis_l.
    """
    h = nn.relu(nn.Conv(self.features[0], (5, 5), padding="SAME", dtype=self.dtype)(x.astype(self.dtype)))
    dis_l = h
    for f in self.features[1:]:
      dis_l = _strided_conv(f, self.dtype, self.padding)(h)
      h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(dis_l))
    h = h.reshape(h.shape[0], -1)
    h = nn.Dense(self.dense, use_bias=False, dtype=self.dtype)(h)
    h = nn.relu(_batch_norm(train, self.bn_momentum, self.bn_epsilon, self.dtype)(h))
    logits = nn.Dense(1, dtype=self.dtype, name="logit")(h)[:, 0]
    return logits.astype(jnp.float32), dis_l.astype(jnp.float32)
