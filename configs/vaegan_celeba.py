"""VAE/GAN at 64x64 on the CelebA subset (200 identities x 30), the paper's networks.

Needs the npz: --config.data.manual_dir=/path/to/celeba or VAEGAN_DATA_DIR=../shared/data.
Original settings: latent 128, batch 64, RMSProp 3e-4 annealed over 37,500 steps, equilibrium
0.68 / margin 0.35 (config.celeba64). `:cpu` (config.celeba64_cpu): half width, 1,775 steps.
"""

from vaegan_jax.config import apply_arg, base_config, celeba64


def get_config(arg: str = ""):
  c = celeba64(base_config())
  c.method = "vaegan"
  c.loss.llike = "dis_l"
  c.loss.gamma = 1e-3
  c.model.dtype = "auto"   # bf16 on a CPU whose jaxlib runs it faster (parallel.compute_dtype)
  return apply_arg(c, arg)
