"""ML-VAE (Bouchacourt, Tomioka, Nowozin 2018) on the 64x64 CelebA subset grouped by identity.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/mlvae_celeba.py --workdir runs/mlvae_celeba
  python eval.py --workdir runs/mlvae_celeba

Trains on the 152 identities of CelebA's official train partition in groups of 10 faces;
the 22 test identities are never seen in training, so eval.py's nearest-neighbour identity
matching and its swap figure measure generalisation to unseen groups.
"""

from vaegan_jax.config import apply_arg, base_config, mlvae


def get_config(arg: str = ""):
  return apply_arg(mlvae(base_config(), "celeba64"), arg)
