"""VAE/GAN at 64x64 on the CelebA subset (200 identities x 30), the paper's networks.

Needs the npz: --config.data.manual_dir=/path/to/celeba or VAEGAN_DATA_DIR=../shared/data.
Original settings: latent 128, batch 64, RMSProp 3e-4 decayed 0.75 per epoch, equilibrium
0.68 / margin 0.35. 71 steps make an epoch of the 4560 training faces.
"""

from vaegan_jax.config import apply_arg, base_config, celeba64


def get_config(arg: str = ""):
  c = celeba64(base_config())
  c.method = "vaegan"
  c.loss.llike = "dis_l"
  c.loss.gamma = 1e-3
  return apply_arg(c, arg)
