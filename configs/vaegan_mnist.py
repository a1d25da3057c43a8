"""VAE/GAN on full MNIST (60k train / 10k test) through the tfds catalog builder ``mnist``.

Offline: --config.data.manual_dir=../shared/data/mnist (or VAEGAN_DATA_DIR=../shared/data).
Preparing a catalog builder once needs TensorFlow: pip install 'vaegan-jax[catalog]'.
Same 28x28 networks as configs/default.py.
"""

from vaegan_jax.config import apply_arg, base_config, small_networks


def get_config(arg: str = ""):
  c = small_networks(base_config())
  c.method = "vaegan"
  c.data.name = "mnist"
  c.train.num_steps = 937 * 10     # 10 epochs at batch 64
  c.train.log_every = 50
  c.train.image_every = 937
  c.checkpoint.every_steps = 937
  return apply_arg(c, arg)
