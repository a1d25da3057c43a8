"""Train a model of the VAE/GAN family.

  python train.py                                   # VAE/GAN on the embedded MNIST digits
  python train.py --config configs/vaegan_celeba.py --workdir runs/celeba
  python train.py --config configs/vae_celeba.py --config.train.num_steps=2000

Re-running the same command resumes from the workdir's newest checkpoint.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
config_flags.DEFINE_config_file("config", os.path.join(_HERE, "configs", "default.py"),
                                "Config file (configs/*.py), optionally ':smoke'.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, images "
                    "(default: runs/<method>_<dataset>).")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  if FLAGS.verbosity == 0:  # orbax and tfds log every file they touch at INFO
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join("runs", f"{config.method}_{config.data.name}")
  logging.info("JAX %s, %d process(es), devices: %s", jax.__version__, jax.process_count(), jax.devices())
  trainer.train_and_evaluate(config, workdir)
  print(f"done: {workdir}")


if __name__ == "__main__":
  app.run(main)
