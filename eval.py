"""Restore a train.py checkpoint and report what it holds.

STUB: until the evaluation issue lands, this only restores the run (with its own saved
config) and prints its step, model, dataset, parameter counts and the reconstruction MSE
of one test batch. It writes nothing.

  python eval.py --workdir runs/vaegan_mnist5k [--step 420]
"""

from absl import app, flags, logging

flags.DEFINE_string("workdir", None, "A train.py --workdir.", required=True)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.verbosity == 0:
    logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from vaegan_jax import data, evaluation  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import vaegan  # pylint: disable=import-outside-toplevel

  run, state, step = evaluation.restore_run(FLAGS.workdir, FLAGS.step)
  counts = {k: sum(x.size for x in jax.tree.leaves(v)) for k, v in state.params.items()}
  print(f"step {step}: method={run.config.method} data={run.config.data.name} parameters={counts}")
  if "encoder" in run.models:
    batch = data.eval_images(run.config, 64)["image"]
    recon = jax.jit(lambda s, x: vaegan.reconstruct(run.models, s, x))(state, batch)
    mse = float(np.mean((np.asarray(recon) - (batch / 127.5 - 1.0)) ** 2))
    print(f"reconstruction MSE on {len(batch)} {run.config.data.eval_split} images (pixels in [-1, 1]): {mse:.4f}")


if __name__ == "__main__":
  app.run(main)
