"""Stride-2 convolutions the Larsen et al. networks need, written so that XLA computes them fast.

A stride-2 convolution and its transpose (the "deconvolution" of the decoder) are each other's
input gradient. XLA computes the transpose as a convolution over the input dilated with zeros,
which on CPU does about four times the useful arithmetic: in the VAE/GAN 64x64 train step at
batch 64 these input-dilated convolutions took 6.9 of the step's 10.4 s of kernel time (profile
in benchmarks/README.md). Here the transpose is computed instead per output phase (row parity x
column parity, the "sub-pixel" view of Shi et al. 2016): each phase is a dense stride-1
convolution with that phase's taps of the kernel, and the four are interleaved.
Two ``jax.custom_vjp`` functions use it where it pays:

* ``strided_conv``: forward and weight gradient as XLA's ordinary stride-2 convolution, input
  gradient in the sub-pixel form;
* ``strided_conv_transpose``: forward in the sub-pixel form, input gradient as the ordinary
  stride-2 convolution, weight gradient as that convolution's weight gradient.

Both compute exactly the function (and gradients) of the plain form: tests compare them with
``lax.conv_general_dilated`` and its autodiff. Padding follows PyTorch's symmetric convention
(``Conv2d(..., 5, stride=2, padding=2)`` and ``ConvTranspose2d(..., 5, stride=2, padding=2,
output_padding=1)``, the layers of the widely used PyTorch VAE/GAN port), so a PyTorch module
with the same weights computes the same outputs (benchmarks/torch_vaegan.py).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def _phase_taps(kernel_size: int, pad: int, phase: int) -> list[tuple[int, int]]:
  """The (offset, tap) pairs that one output phase of a stride-2 transposed convolution reads.

  The transpose of ``y[o] = sum_k x[2o + k - pad] w[k]`` is ``t[i] = sum_{o,k: 2o+k-pad=i} y[o] w[k]``:
  output ``i = 2a + phase`` reads input ``y[a + d]`` through tap ``k = phase + pad - 2d``.

  Returns:
    [(d, k)] in increasing d (consecutive offsets), each with ``0 <= k < kernel_size``.
  """
  return [(d, phase + pad - 2 * d) for d in range(-kernel_size, kernel_size + 1)
          if 0 <= phase + pad - 2 * d < kernel_size]


def _subpixel_transpose(y: jax.Array, kernel: jax.Array, padding: tuple[int, int],
                        output_hw: tuple[int, int]) -> jax.Array:
  """The transpose of a stride-2 convolution, as four stride-1 convolutions (one per output phase).

  Output pixel (2a + py, 2b + px) is a stride-1 convolution of ``y`` with the taps of phase
  (py, px) only (for a 5x5 kernel: 3x3, 3x2, 2x3 and 2x2 taps, 25 in all), so no multiply
  touches an inserted zero; the four results are interleaved (depth-to-space).

  Args:
    y: [batch, m_h, m_w, c_small] (the stride-2 convolution's output side).
    kernel: [k_h, k_w, c_small, c_big], the convolution's kernel with its channel axes swapped.
    padding: (pad_h, pad_w), the convolution's symmetric padding.
    output_hw: (n_h, n_w) with ``n <= 2 m`` (the convolution's input size).

  Returns:
    [batch, n_h, n_w, c_big].
  """
  (k_h, k_w), (pad_h, pad_w) = kernel.shape[:2], padding
  kernel = kernel.astype(y.dtype)
  rows = []
  for py in (0, 1):
    taps_h = _phase_taps(k_h, pad_h, py)
    columns = []
    for px in (0, 1):
      taps_w = _phase_taps(k_w, pad_w, px)
      k = kernel[np.array([t for _, t in taps_h])][:, np.array([t for _, t in taps_w])]
      pads = [(-taps_h[0][0], taps_h[-1][0]), (-taps_w[0][0], taps_w[-1][0])]
      columns.append(lax.conv_general_dilated(y, k, (1, 1), pads, dimension_numbers=_NHWC))
    rows.append(jnp.stack(columns, axis=3))  # [batch, m_h, m_w, px, c]
  out = jnp.stack(rows, axis=2)  # [batch, m_h, py, m_w, px, c]
  n, m_h, _, m_w, _, c = out.shape
  return out.reshape(n, 2 * m_h, 2 * m_w, c)[:, :output_hw[0], :output_hw[1]]


def _conv(x: jax.Array, kernel: jax.Array, padding: tuple[int, int]) -> jax.Array:
  if not strided_conv_fits(x.shape[1:3], kernel.shape[:2], padding):
    raise ValueError(f"a stride-2 convolution of {x.shape[1:3]} inputs with a {kernel.shape[:2]} kernel and padding "
                     f"{padding} skips input rows or columns; strided_conv needs n <= 2 * output size")
  return lax.conv_general_dilated(x, kernel, (2, 2), [(p, p) for p in padding], dimension_numbers=_NHWC)


def _kernel_grad(x: jax.Array, kernel: jax.Array, padding: tuple[int, int], g: jax.Array) -> jax.Array:
  """d<g, conv(x, kernel)>/d kernel, XLA's own weight gradient (the forward it traces is unused)."""
  return jax.vjp(lambda k: _conv(x, k, padding), kernel)[1](g)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def strided_conv(x: jax.Array, kernel: jax.Array, padding: tuple[int, int]) -> jax.Array:
  """A stride-2 convolution whose input gradient is computed in the sub-pixel form.

  Same values and gradients as ``lax.conv_general_dilated(x, kernel, (2, 2), [(p, p) for p in
  padding])`` in NHWC/HWIO layout.

  Args:
    x: f32 or bf16[batch, n_h, n_w, c_in].
    kernel: [k_h, k_w, c_in, c_out], same dtype as ``x``.
    padding: (pad_h, pad_w), zeros added on both sides of each spatial axis; the output size
      ``m = (n + 2 pad - k) // 2 + 1`` must satisfy ``n <= 2 m`` (true for 5x5 / pad 2 and
      4x4 / pad 1 on any size; ``strided_conv_fits`` checks it).

  Returns:
    [batch, m_h, m_w, c_out].

  Raises:
    ValueError: the shape does not satisfy ``n <= 2 m``.
  """
  return _conv(x, kernel, padding)


def _strided_conv_fwd(x, kernel, padding):
  return _conv(x, kernel, padding), (x, kernel)


def _strided_conv_bwd(padding, residuals, g):
  x, kernel = residuals
  dx = _subpixel_transpose(g, jnp.swapaxes(kernel, 2, 3), padding, x.shape[1:3])
  return dx.astype(x.dtype), _kernel_grad(x, kernel, padding, g)


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv_transpose(x: jax.Array, kernel: jax.Array, padding: tuple[int, int],
                           output_hw: tuple[int, int]) -> jax.Array:
  """The transpose of ``strided_conv`` (a "deconvolution"), forward in the sub-pixel form.

  ``t = strided_conv_transpose(y, w, padding, (n_h, n_w))`` is the input gradient of
  ``strided_conv(., swapaxes(w, 2, 3), padding)`` at cotangent ``y``; with ``padding=(2, 2)`` and
  ``output_hw = 2 * y.shape[1:3]`` it is PyTorch's ``ConvTranspose2d(c_in, c_out, 5, stride=2,
  padding=2, output_padding=1, bias=False)`` with ``weight[i, o, ky, kx] = w[ky, kx, i, o]``.
  Its input gradient is the stride-2 convolution itself, its weight gradient that convolution's.
  Padding and output size must satisfy what ``strided_conv`` needs (``strided_conv_fits``).

  Args:
    x: f32 or bf16[batch, m_h, m_w, c_in].
    kernel: [k_h, k_w, c_in, c_out], same dtype as ``x``.
    padding: (pad_h, pad_w) of the convolution this transposes.
    output_hw: (n_h, n_w), the output size, ``n <= 2 m`` and ``(n + 2 pad - k) // 2 + 1 == m``.

  Returns:
    [batch, n_h, n_w, c_out].
  """
  return _subpixel_transpose(x, kernel, padding, output_hw)


def _strided_conv_transpose_fwd(x, kernel, padding, output_hw):
  return _subpixel_transpose(x, kernel, padding, output_hw), (x, kernel)


def _strided_conv_transpose_bwd(padding, output_hw, residuals, g):
  x, kernel = residuals
  swapped = jnp.swapaxes(kernel, 2, 3)  # the convolution's kernel: big side (c_out) in, c_in out
  dx = _conv(g, swapped, padding)
  dkernel = jnp.swapaxes(_kernel_grad(g, swapped, padding, x), 2, 3)
  return dx.astype(x.dtype), dkernel


strided_conv_transpose.defvjp(_strided_conv_transpose_fwd, _strided_conv_transpose_bwd)


def strided_conv_fits(input_hw: Sequence[int], kernel_hw: Sequence[int], padding: Sequence[int]) -> bool:
  """Whether ``strided_conv`` takes this shape: every input row is read, ``n <= 2 m``."""
  return all(n <= 2 * ((n + 2 * p - k) // 2 + 1) and n + 2 * p >= k
             for n, k, p in zip(input_hw, kernel_hw, padding))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None,
                         preferred_element_type=None):
  """``lax.conv_general_dilated`` that routes stride-2 convolutions through ``strided_conv``.

  A drop-in for ``flax.linen.Conv(..., conv_general_dilated=...)``: same signature and values.
  Used when the strides are (2, 2), the padding is symmetric, there is no dilation or grouping,
  the layout is NHWC/HWIO and ``strided_conv_fits``; anything else goes to lax unchanged.
  """
  plain = functools.partial(lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation,
                            rhs_dilation, dimension_numbers, feature_group_count, precision=precision,
                            preferred_element_type=preferred_element_type)
  if (tuple(window_strides) != (2, 2) or isinstance(padding, str) or feature_group_count != 1
      or any(d is not None and any(v != 1 for v in d) for d in (lhs_dilation, rhs_dilation))
      or preferred_element_type is not None or lhs.ndim != 4
      or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    return plain()
  pads = [tuple(p) for p in padding]
  if any(lo != hi for lo, hi in pads) or not strided_conv_fits(lhs.shape[1:3], rhs.shape[:2], [lo for lo, _ in pads]):
    return plain()
  return strided_conv(lhs, rhs, (pads[0][0], pads[1][0]))


class SubpixelConvTranspose(nn.Module):
  """A 5x5, stride-2 transposed convolution that doubles the image: [b, h, w, c] -> [b, 2h, 2w, features].

  PyTorch's ``ConvTranspose2d(c_in, features, 5, stride=2, padding=2, output_padding=1,
  bias=False)`` (the layer of Larsen et al.'s decoder in the PyTorch port), with the kernel
  stored as [5, 5, c_in, features] (PyTorch's weight transposed to (2, 3, 0, 1)). Computed by
  ``strided_conv_transpose``: forward as four per-phase convolutions and depth-to-space, backward
  as ordinary stride-2 convolutions (no input dilation anywhere).

  Attributes:
    features: output channels.
    dtype: computation dtype (parameters stay ``param_dtype``).
    param_dtype: parameter dtype.
    kernel_init: initialiser of the [5, 5, c_in, features] kernel.
  """

  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Upsamples f[batch, h, w, c_in] to f[batch, 2h, 2w, features] (dtype ``self.dtype``)."""
    kernel = self.param("kernel", self.kernel_init, (5, 5, x.shape[-1], self.features), self.param_dtype)
    return strided_conv_transpose(x.astype(self.dtype), kernel.astype(self.dtype), (2, 2),
                                  (2 * x.shape[1], 2 * x.shape[2]))


class SubpixelUpsample(nn.Module):
  """x2 upsampling by a 3x3 convolution to ``4 * features`` channels and depth-to-space (Shi et al. 2016).

  Stands in for a 4x4, stride-2, padding-1 transposed convolution (PyTorch's
  ``ConvTranspose2d(c_in, features, 4, 2, 1)``, the CCVAE decoder's layer): each output pixel
  of that layer reads a 2x2 input neighbourhood, which the 3x3 window contains, so every such
  transposed convolution is one of these layers (the converse does not hold: this one has
  36 rather than 16 weights per channel pair). Why not the transposed convolution itself: XLA
  computes it over a zero-dilated input (see the module docstring).

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
