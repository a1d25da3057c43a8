"""The plain VAE baseline at 64x64 on the CelebA subset: same encoder/decoder as VAE/GAN,
element-wise Gaussian likelihood on pixels (std 0.1 on [-1, 1]), no discriminator."""

from vaegan_jax.config import apply_arg, base_config


def get_config(arg: str = ""):
  c = base_config()
  c.method = "vae"
  c.data.name = "celeba64"
  c.loss.llike = "pixel"
  c.train.num_steps = 71 * 150
  c.train.log_every = 10
  c.train.image_every = 100
  c.checkpoint.every_steps = 100
  return apply_arg(c, arg)
