"""TVAE on Fashion-MNIST with the settings of configs/tvae_mnist.py.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/tvae_fashion_mnist.py
"""

from vaegan_jax.config import apply_arg, base_config, tvae


def get_config(arg: str = ""):
  return apply_arg(tvae(base_config(), "fashion_mnist"), arg)
