"""The plain VAE baseline at 64x64 on the CelebA subset: same encoder/decoder as VAE/GAN,
element-wise Gaussian likelihood on pixels (std 0.1 on [-1, 1]), no discriminator."""

from vaegan_jax.config import apply_arg, base_config, celeba64


def get_config(arg: str = ""):
  c = celeba64(base_config())
  c.method = "vae"
  c.loss.llike = "pixel"
  c.model.dtype = "auto"   # bf16 on a CPU whose jaxlib runs it faster (parallel.compute_dtype)
  return apply_arg(c, arg)
