"""Network shapes, separate parameter trees, and the sub-pixel transposed convolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaegan_jax.config import base_config
from vaegan_jax.methods import vaegan
from vaegan_jax.models import Decoder, Discriminator, Encoder, SubpixelConvTranspose


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
      h = nn.Conv(8, (5, 5), strides=(2, 2), padding="SAME", use_bias=False).apply({"params": p[f"Conv_{i}"]}, h)
      h = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-6).apply(
          {"params": p[f"BatchNorm_{i - 1}"], "batch_stats": s[f"BatchNorm_{i - 1}"]}, h))
    return nn.Conv(8, (5, 5), strides=(2, 2), padding="SAME", use_bias=False).apply({"params": p["Conv_3"]}, h)

  np.testing.assert_allclose(dis_l, by_hand(p, s, x), atol=1e-5)
  dec = Decoder(image_shape=(28, 28, 1), features=(8, 8, 4))
  z = 5 * jax.random.normal(jax.random.key(3), (4, 8))
  out = jax.jit(lambda z: dec.apply(dec.init(jax.random.key(4), z, train=False), z, train=False))(z)
  assert out.shape == (4, 28, 28, 1) and float(jnp.max(jnp.abs(out))) <= 1.0


@pytest.mark.parametrize("hw, c_in, c_out", [((4, 4), 3, 5), ((7, 5), 2, 3), ((8, 8), 16, 8)])
def test_subpixel_equals_conv_transpose(hw, c_in, c_out):
  x = jax.random.normal(jax.random.key(0), (2, *hw, c_in))
  sub = SubpixelConvTranspose(c_out)
  params = jax.jit(sub.init)(jax.random.key(1), x)
  ref = nn.ConvTranspose(c_out, (5, 5), strides=(2, 2), padding="SAME", use_bias=False)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, jax.eval_shape(ref.init, jax.random.key(1), x))
  np.testing.assert_allclose(jax.jit(sub.apply)(params, x), jax.jit(ref.apply)(params, x), atol=1e-5)
  # Same gradient with respect to the shared 5x5 kernel.
  g_sub = jax.jit(jax.grad(lambda p: jnp.sum(sub.apply(p, x) ** 2)))(params)
  g_ref = jax.jit(jax.grad(lambda p: jnp.sum(ref.apply(p, x) ** 2)))(params)
  np.testing.assert_allclose(g_sub["params"]["kernel"], g_ref["params"]["kernel"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method, networks", [("vaegan", {"encoder", "decoder", "discriminator"}),
                                              ("vae", {"encoder", "decoder"}),
                                              ("gan", {"decoder", "discriminator"})])
def test_each_method_builds_its_networks_as_separate_trees(method, networks):
  c = base_config()
  c.method = method
  assert set(vaegan.build_models(c, (28, 28, 1))) == networks
