"""Train a model of the VAE/GAN family.

  python train.py                                   # VAE/GAN on the embedded MNIST digits
  python train.py --config configs/vaegan_celeba.py --workdir runs/celeba
  python train.py --config configs/vae_celeba.py --config.train.num_steps=2000

  # one of two processes (run the same command with --process_id=1 elsewhere):
  python train.py --coordinator_address=host0:1234 --num_processes=2 --process_id=0

Re-running the same command resumes from the workdir's newest checkpoint. SIGTERM or
Ctrl-C (SIGINT) finish the current step, save a checkpoint and exit 0; bad input exits 1
with "train.py: error: <what is wrong and how to fix it>" before anything is computed.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from vaegan_jax import distributed

_HERE = os.path.dirname(os.path.abspath(__file__))
config_flags.DEFINE_config_file("config", os.path.join(_HERE, "configs", "default.py"),
                                "Config file (configs/*.py), optionally ':smoke'.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, images "
                    "(default: runs/<method>_<dataset>).")
distributed.define_flags()
flags.adopt_module_key_flags(distributed)  # listed by --help, not only --helpfull
FLAGS = flags.FLAGS


def parse_flags(argv):
  """absl's flag parsing, with a one-line error for unknown or mistyped ``--config.*`` keys.

  ml_collections raises AttributeError/KeyError (with a "Did you mean" hint) or TypeError
  from inside flag parsing, which absl would print as a long traceback.
  """
  try:
    return FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    cause = e
    while cause.args and isinstance(cause.args[0], BaseException):  # ml_collections nests them
      cause = cause.args[0]
    text = str(cause.args[0] if cause.args else cause).replace("\n", " ")
    if isinstance(cause, (AttributeError, KeyError)):
      text = f"unknown config key {text}"
    bad = [a for a in argv[1:] if a.startswith("--")]
    raise SystemExit(f"train.py: error: {text} (flags given: {' '.join(bad)}). Config keys and their "
                     "types are in vaegan_jax/config.py (base_config); flags in train.py --help.") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.initialize_from_flags("train.py")  # before anything touches a device
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  if FLAGS.verbosity == 0:  # orbax and tfds log every file they touch at INFO
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join("runs", f"{config.method}_{config.data.name}")
  logging.info("JAX %s, %d process(es), devices: %s", jax.__version__, jax.process_count(), jax.devices())
  try:
    state = trainer.train_and_evaluate(config, workdir)
  except trainer.EXPECTED_ERRORS as e:  # bad input or a stopped run: the message says what to do
    if FLAGS.verbosity > 0:
      raise
    raise SystemExit(f"train.py: error: {e}\n(--verbosity=1 shows the traceback)") from None
  if int(state.step) >= config.train.num_steps and distributed.is_primary():
    print(f"done: {workdir}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
