"""TVAE (Ishfaq, Hoogi, Rubin 2018) on MNIST: the 784-400-20 VAE plus a triplet loss on mu.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/tvae_mnist.py
  # the plain VAE of the same architecture, on the same triplet batches:
  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/tvae_mnist.py \\
      --config.loss.triplet_weight=0.0 --workdir runs/vae_mlp_mnist

Preparing MNIST needs TensorFlow once (pip install -e '.[catalog]'). ``:smoke`` trains a tiny
one on the embedded mnist5k digits.
"""

from vaegan_jax.config import apply_arg, base_config, tvae


def get_config(arg: str = ""):
  return apply_arg(tvae(base_config(), "mnist"), arg)
