"""Adversarial autoencoder (Makhzani et al. 2015) on MNIST: code 8, Gaussian prior, the
paper's likelihood experiment (Parzen-window log-likelihood of the test set, eval.py).

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/aae_mnist.py --workdir runs/aae_mnist
  python eval.py --workdir runs/aae_mnist

Variants by flag:
  # a 2-D code for the latent-space figure:
  --config.model.latent_dim=2
  # the label-conditioned mixture of 10 Gaussians (class k on component k), 2-D:
  --config.model.latent_dim=2 --config.aae.prior=mixture --config.aae.condition_on_label=True
  # anomaly detection, one-class protocol: train on digit 3 only, eval.py reports ROC AUC:
  --config.aae.normal_class=3    (scripts/aae_anomaly.sh runs all ten digits)

The last 10,000 training digits are held out to choose the Parzen bandwidth. Preparing MNIST
needs TensorFlow once (pip install -e '.[catalog]'); ``:smoke`` uses the embedded mnist5k.
"""

from vaegan_jax.config import aae, apply_arg, base_config


def get_config(arg: str = ""):
  return apply_arg(aae(base_config(), "aae", latent_dim=8), arg)
