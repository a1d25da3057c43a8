"""The GAN baseline at 64x64 on the CelebA subset: the VAE/GAN decoder as generator and its
discriminator, no encoder (DCGAN-style non-saturating generator loss)."""

from vaegan_jax.config import apply_arg, base_config, celeba64


def get_config(arg: str = ""):
  c = celeba64(base_config())
  c.method = "gan"
  c.model.dtype = "auto"   # bf16 on a CPU whose jaxlib runs it faster (parallel.compute_dtype)
  return apply_arg(c, arg)
