"""Network shapes, separate parameter trees, and the stride-2 convolutions of models/layers.py."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaegan_jax import config as config_lib
from vaegan_jax.config import base_config
from vaegan_jax.methods import vaegan
from vaegan_jax.models import Decoder, Discriminator, Encoder, SubpixelConvTranspose
from vaegan_jax.models import larsen, layers


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_paper_networks_output_shapes(shape):
  """Full paper widths, shapes only (eval_shape allocates nothing)."""
  batch, latent = 3, 128
  x = jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
  z = jax.ShapeDtypeStruct((batch, latent), jnp.float32)
  key = jax.random.key(0)
  for module, inp in [(Encoder(latent_dim=latent), x), (Decoder(image_shape=shape), z), (Discriminator(), x)]:
    variables = jax.eval_shape(lambda v, m=module: m.init(key, v, train=False), inp)
    out = jax.eval_shape(lambda v, i, m=module: m.apply(v, i, train=False), variables, inp)
    if isinstance(module, Encoder):
      assert [o.shape for o in out] == [(batch, latent)] * 2
    elif isinstance(module, Decoder):
      assert out.shape == (batch, *shape)
    else:
      logits, dis_l = out
      assert logits.shape == (batch,)
      h8, w8 = -(-shape[0] // 8), -(-shape[1] // 8)
      assert dis_l.shape == (batch, h8, w8, 256)
  if shape == (64, 64, 3):
    assert h8 * w8 * 256 == 16_384  # the paper's Dis_l size


def test_decoder_output_range_and_dis_l_is_pre_batchnorm():
  x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1), minval=-1, maxval=1)
  dis = Discriminator(features=(4, 8, 8, 8), dense=16)
  # jitted: run eagerly, every op of the network compiles on its own (30 s instead of 3 s)
  v = jax.jit(lambda x: dis.init(jax.random.key(2), x, train=False))(x)
  _, dis_l = jax.jit(lambda v, x: dis.apply(v, x, train=False))(v, x)
  # Recompute the 4th conv's output by hand from the first three blocks: it must equal Dis_l.
  p, s = v["params"], v["batch_stats"]

  @jax.jit
  def by_hand(p, s, x):
    h = nn.relu(nn.Conv(4, (5, 5), padding="SAME").apply({"params": p["Conv_0"]}, x))
    for i in (1, 2):
      h = nn.Conv(8, (5, 5), strides=(2, 2), padding=2, use_bias=False).apply({"params": p[f"Conv_{i}"]}, h)
      h = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-6).apply(
          {"params": p[f"BatchNorm_{i - 1}"], "batch_stats": s[f"BatchNorm_{i - 1}"]}, h))
    return nn.Conv(8, (5, 5), strides=(2, 2), padding=2, use_bias=False).apply({"params": p["Conv_3"]}, h)

  np.testing.assert_allclose(dis_l, by_hand(p, s, x), atol=1e-5)
  dec = Decoder(image_shape=(28, 28, 1), features=(8, 8, 4))
  z = 5 * jax.random.normal(jax.random.key(3), (4, 8))
  out = jax.jit(lambda z: dec.apply(dec.init(jax.random.key(4), z, train=False), z, train=False))(z)
  assert out.shape == (4, 28, 28, 1) and float(jnp.max(jnp.abs(out))) <= 1.0


def _plain_conv(x, kernel, pad):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))


# (input height, width), kernel size, padding: the Larsen nets' 5x5 / pad 2 on even and odd sizes
# (64 -> 32, 7 -> 4), the CCVAE's 4x4 / pad 1, and 3x3 / pad 1.
CASES = [((8, 10), 5, 2), ((7, 5), 5, 2), ((28, 14), 5, 2), ((8, 6), 4, 1), ((9, 6), 3, 1)]


@pytest.mark.parametrize("hw, k, pad", CASES)
def test_strided_conv_equals_plain_conv_with_gradients(hw, k, pad):
  """Values and both gradients against lax.conv_general_dilated and its own autodiff."""
  x = jax.random.normal(jax.random.key(0), (2, *hw, 3))
  w = jax.random.normal(jax.random.key(1), (k, k, 3, 4))
  y, plain_vjp = jax.vjp(lambda x, w: _plain_conv(x, w, pad), x, w)
  ours, our_vjp = jax.vjp(lambda x, w: layers.strided_conv(x, w, (pad, pad)), x, w)
  np.testing.assert_allclose(ours, y, atol=1e-5)
  g = jax.random.normal(jax.random.key(2), y.shape)
  for a, b in zip(our_vjp(g), plain_vjp(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("hw, k, pad", CASES)
def test_strided_conv_transpose_is_the_transpose_with_gradients(hw, k, pad):
  """strided_conv_transpose(y, w) is the input gradient of the plain conv with w's channels swapped,
  and its gradients are that function's autodiff gradients."""
  x = jnp.zeros((2, *hw, 4))
  def reference(y, w):  # the definition: d<y, conv(x, w^T)>/dx
    return jax.vjp(lambda x: _plain_conv(x, jnp.swapaxes(w, 2, 3), pad), x)[1](y)[0]
  m_h, m_w = _plain_conv(x, jnp.zeros((k, k, 4, 3)), pad).shape[1:3]
  y = jax.random.normal(jax.random.key(3), (2, m_h, m_w, 3))
  w = jax.random.normal(jax.random.key(4), (k, k, 3, 4))
  t, ref_vjp = jax.vjp(reference, y, w)
  ours, our_vjp = jax.vjp(lambda y, w: layers.strided_conv_transpose(y, w, (pad, pad), hw), y, w)
  np.testing.assert_allclose(ours, t, atol=1e-5)
  g = jax.random.normal(jax.random.key(5), t.shape)
  for a, b in zip(our_vjp(g), ref_vjp(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_strided_conv_refuses_skipped_rows():
  """A 3x3 kernel with no padding skips the last row of a 6-row input: an error, not a wrong gradient."""
  with pytest.raises(ValueError, match="skips input rows"):
    layers.strided_conv(jnp.zeros((1, 6, 6, 1)), jnp.zeros((3, 3, 1, 1)), (0, 0))


def test_conv_general_dilated_routes_only_what_it_can_and_matches_lax():
  x = jax.random.normal(jax.random.key(6), (2, 9, 9, 3))
  w = jax.random.normal(jax.random.key(7), (5, 5, 3, 4))
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  for strides, padding in [((2, 2), ((2, 2), (2, 2))), ((1, 1), ((2, 2), (2, 2))), ((2, 2), ((1, 2), (1, 2)))]:
    ours = layers.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn)
    plain = jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn)
    np.testing.assert_allclose(ours, plain, atol=1e-5)
  routed = jax.make_jaxpr(lambda x: layers.conv_general_dilated(x, w, (2, 2), ((2, 2), (2, 2)), dimension_numbers=dn))(x)
  assert "custom_vjp_call" in str(routed)
  asymmetric = jax.make_jaxpr(lambda x: layers.conv_general_dilated(x, w, (2, 2), ((1, 2), (1, 2)), dimension_numbers=dn))(x)
  assert "custom_vjp_call" not in str(asymmetric)


@pytest.mark.parametrize("hw", [(4, 4), (7, 5)])
def test_subpixel_conv_transpose_is_pytorch_conv_transpose(hw):
  """SubpixelConvTranspose = PyTorch's ConvTranspose2d(c, f, 5, stride=2, padding=2, output_padding=1),
  written here from its definition: out[2j + k - 2] += in[j] * w[k] per spatial axis."""
  c_in, c_out = 3, 5
  x = jax.random.normal(jax.random.key(0), (2, *hw, c_in))
  sub = SubpixelConvTranspose(c_out)
  params = jax.jit(sub.init)(jax.random.key(1), x)
  kernel = np.asarray(params["params"]["kernel"])
  assert kernel.shape == (5, 5, c_in, c_out)
  h, w = hw
  full = np.zeros((2, 2 * h + 3, 2 * w + 3, c_out))  # rows -2 .. 2h: the scatter before cropping
  xn = np.asarray(x)
  for i in range(h):
    for j in range(w):
      full[:, 2 * i:2 * i + 5, 2 * j:2 * j + 5] += np.einsum("bc,hwcf->bhwf", xn[:, i, j], kernel)
  expected = full[:, 2:2 + 2 * h, 2:2 + 2 * w]
  np.testing.assert_allclose(jax.jit(sub.apply)(params, x), expected, atol=1e-5)


@pytest.mark.parametrize("method, networks", [("vaegan", {"encoder", "decoder", "discriminator"}),
                                              ("vae", {"encoder", "decoder"}),
                                              ("gan", {"decoder", "discriminator"})])
def test_each_method_builds_its_networks_as_separate_trees(method, networks):
  c = base_config()
  c.method = method
  assert set(vaegan.build_models(c, (28, 28, 1))) == networks


def test_runs_saved_before_pytorch_padding_rebuild_their_networks():
  """A config saved before model.conv_padding existed is a run trained with XLA's 'SAME' padding:
  it restores into the same parameter tree, and its decoder layer is the transposed convolution
  it was trained with, written here from its definition: out[2j + 3 - k] += in[j] * w[k]."""
  saved = config_lib.to_json(base_config())
  assert config_lib.from_json(saved).model.conv_padding == "pytorch"
  del saved["model"]["conv_padding"]
  c = config_lib.from_json(saved)
  assert c.model.conv_padding == "same"

  x = jnp.zeros((2, 28, 28, 1))
  shapes = {}
  for padding in config_lib.CONV_PADDINGS:
    c.model.conv_padding = padding
    models = vaegan.build_models(c, x.shape[1:])
    variables = {name: jax.eval_shape(functools.partial(m.init, train=False), jax.random.key(0),
                                      x if name != "decoder" else jnp.zeros((2, 128)))
                 for name, m in models.items()}
    shapes[padding] = jax.tree.map(lambda a: a.shape, variables)
  assert shapes["same"] == shapes["pytorch"]   # a checkpoint of either restores into either

  c_in, c_out, (h, w) = 3, 5, (4, 3)
  layer = larsen._conv_transpose(c_out, jnp.float32, "same", 0)   # pylint: disable=protected-access
  x = jax.random.normal(jax.random.key(2), (2, h, w, c_in))
  params = layer.init(jax.random.key(1), x)
  kernel = np.asarray(params["params"]["kernel"])
  full = np.zeros((2, 2 * h + 3, 2 * w + 3, c_out))   # rows -1 .. 2h + 1
  for i in range(h):
    for j in range(w):
      full[:, 2 * i:2 * i + 5, 2 * j:2 * j + 5] += np.einsum("bc,hwcf->bhwf", np.asarray(x[:, i, j]),
                                                             kernel[::-1, ::-1])
  np.testing.assert_allclose(layer.apply(params, x), full[:, 1:1 + 2 * h, 1:1 + 2 * w], atol=1e-5)

  # The decoders of the two conventions share parameters but not their function.
  z = jax.random.normal(jax.random.key(0), (2, 128))
  decoders = {p: Decoder(image_shape=(28, 28, 1), features=(16, 8, 4), padding=p) for p in config_lib.CONV_PADDINGS}
  variables = decoders["pytorch"].init(jax.random.key(1), z, train=False)
  out = {p: d.apply(variables, z, train=False) for p, d in decoders.items()}
  assert float(jnp.max(jnp.abs(out["same"] - out["pytorch"]))) > 1e-3
