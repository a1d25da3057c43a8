"""Evaluate train.py checkpoints: metrics.json and PNG figures per checkpoint, or a comparison table.

  python eval.py --workdir runs/vaegan_mnist5k              # newest checkpoint
  python eval.py --workdir runs/vaegan_mnist5k --step 420
  python eval.py --compare runs/vae,runs/gan,runs/vaegan --out runs/comparison

Writes WORKDIR/eval/<step>/metrics.json and reconstructions.png, samples.png,
interpolation.png (and attribute_arithmetic.png on CelebA). The run is restored with the
config it was trained with. The domain classifier that scores samples is trained once per
dataset and cached in $VAEGAN_CACHE_DIR (default ~/.cache/vaegan_jax). See README "Evaluation".
"""

from absl import app, flags, logging

flags.DEFINE_string("workdir", None, "A train.py --workdir to evaluate.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_list("compare", None, "Comma-separated workdirs to evaluate and compare in one table.")
flags.DEFINE_string("out", "runs/comparison", "With --compare: folder for comparison.md and comparison.png.")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(FLAGS.workdir) == bool(FLAGS.compare):
    raise app.UsageError("give either --workdir W (one run) or --compare W1,W2,... (a table)")
  if FLAGS.verbosity == 0:
    logging.set_verbosity(logging.WARNING)
  from vaegan_jax import evaluation, trainer  # pylint: disable=import-outside-toplevel
  try:
    if FLAGS.compare:
      print(evaluation.compare(FLAGS.compare, FLAGS.out))
      print(f"wrote {FLAGS.out}/comparison.md and comparison.png")
      return
    results, folder = evaluation.evaluate(FLAGS.workdir, FLAGS.step)
  except trainer.EXPECTED_ERRORS as e:
    raise SystemExit(f"eval.py: {e}") from None
  print(f"step {results['step']}: method={results['method']} data={results['dataset']}")
  for key, value in results.items():
    if isinstance(value, float):
      print(f"  {key}: {value:.5g}")
  print(f"wrote {folder}/metrics.json and figures")


if __name__ == "__main__":
  app.run(main)
