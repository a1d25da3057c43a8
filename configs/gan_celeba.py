"""The GAN baseline at 64x64 on the CelebA subset: the VAE/GAN decoder as generator and its
discriminator, no encoder (DCGAN-style non-saturating generator loss)."""

from vaegan_jax.config import apply_arg, base_config


def get_config(arg: str = ""):
  c = base_config()
  c.method = "gan"
  c.data.name = "celeba64"
  c.loss.generator = "non_saturating"
  c.train.num_steps = 71 * 150
  c.train.log_every = 10
  c.train.image_every = 100
  c.checkpoint.every_steps = 100
  return apply_arg(c, arg)
