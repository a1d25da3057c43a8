"""CCVAE (Joy et al. 2021) on MNIST: the digit as ten binary labels, z = 10 characteristic + 10.

  VAEGAN_DATA_DIR=../shared/data python train.py --config configs/ccvae_mnist.py --workdir runs/ccvae_mnist_1
  python train.py --config configs/ccvae_mnist.py --config.ccvae.supervision_rate=0.06 --workdir runs/ccvae_mnist_006
  python train.py --config configs/ccvae_mnist.py --config.ccvae.objective=classifier \\
      --config.ccvae.supervision_rate=0.06 --workdir runs/ccvae_mnist_006_baseline
  python eval.py --workdir runs/ccvae_mnist_006

The supervision rate (0.004, 0.06, 0.2, 1.0 in the paper) is the labelled fraction of the
training digits and of the batches. eval.py reports q(y|x)'s test accuracy per label,
interventions scored by an independently trained digit classifier, and writes latent walks,
conditional generations and characteristic swaps. Preparing MNIST needs TensorFlow once
(pip install -e '.[catalog]'); ``:smoke`` uses the embedded mnist5k.
"""

from vaegan_jax.config import apply_arg, base_config, ccvae


def get_config(arg: str = ""):
  return apply_arg(ccvae(base_config(), "mnist"), arg)
