"""ML-VAE (Bouchacourt, Tomioka, Nowozin 2018) on MNIST grouped by digit: style 10, content 10.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/mlvae_mnist.py --workdir runs/mlvae_mnist
  python eval.py --workdir runs/mlvae_mnist

Groups are 32 digits of one class (--config.mlvae.group_size); the likelihood is the public
port's, a Gaussian of std sqrt(2) on [-1, 1] pixels (--config.loss.llike=bernoulli for the
sharper, less disentangled Bernoulli decoder). eval.py reports how well a linear probe and the
port's MLP-on-samples protocol read the digit from the content latent and from the style
latent, the test ELBO with and without group accumulation, and writes swap and accumulation
figures.
Preparing MNIST needs TensorFlow once (pip install -e '.[catalog]'); ``:smoke`` uses the
embedded mnist5k.
"""

from vaegan_jax.config import apply_arg, base_config, mlvae


def get_config(arg: str = ""):
  return apply_arg(mlvae(base_config(), "mnist"), arg)
