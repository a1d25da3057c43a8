"""CCVAE (Joy et al. 2021) on the 64x64 CelebA subset with the official code's 18 labels.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/ccvae_celeba.py --workdir runs/ccvae_celeba_1
  python train.py --config configs/ccvae_celeba.py --config.ccvae.supervision_rate=0.2 --workdir runs/ccvae_celeba_02
  python eval.py --workdir runs/ccvae_celeba_02

z is 45 (18 characteristic + 27), the official 64x64 convolutional networks with a
Laplace(x_hat, 1) likelihood, Adam 1e-4 (the conditional prior: 1e-2), batch 200, 500 epochs
of the 4,560 training faces (11,000 steps).
eval.py reports per-label test accuracy of q(y|x), interventions scored by the cached
40-attribute classifier, and writes latent walks (one label, and 5x5 pairs), conditional
generations and characteristic swaps.
"""

from vaegan_jax.config import apply_arg, base_config, ccvae


def get_config(arg: str = ""):
  return apply_arg(ccvae(base_config(), "celeba64"), arg)
