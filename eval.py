"""Evaluate train.py checkpoints: metrics.json and PNG figures per checkpoint, or a comparison table.

  python eval.py --workdir runs/vaegan_mnist5k              # newest checkpoint
  python eval.py --workdir runs/vaegan_mnist5k --step 420
  python eval.py --compare runs/vae,runs/gan,runs/vaegan --out runs/comparison
  python eval.py --workdir runs/mine --export samples=10000,reconstructions=10000 --out runs/mine/png
  python eval.py --workdir runs/mine --save_model models/mine   # a folder vaegan_jax.load reads without the data

Writes WORKDIR/eval/<step>/metrics.json and reconstructions.png, samples.png,
interpolation.png (and attribute_arithmetic.png on CelebA). The run is restored with the
config it was trained with. The domain classifier that scores samples is trained once per
dataset and cached in $VAEGAN_CACHE_DIR (default ~/.cache/vaegan_jax). See README "Evaluation".

Started as one process of several (the flags of train.py: --coordinator_address,
--num_processes, --process_id, --distributed), process 0 evaluates on its own devices and
the others wait for it: evaluation is small next to training, and one writer is simplest.
"""

import os

from absl import app, flags, logging

from vaegan_jax import distributed

flags.DEFINE_string("workdir", None, "A train.py --workdir to evaluate.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_list("compare", None, "Comma-separated workdirs to evaluate and compare in one table.")
flags.DEFINE_string("out", None, "With --compare: folder for comparison.md and comparison.png (default "
                    "runs/comparison). With --export: folder for the PNG files (required).")
flags.DEFINE_string("export", None, "With --workdir: write numbered PNGs instead of evaluating, e.g. "
                    "samples=10000,reconstructions=10000,test=10000 (for clean-fid, torch-fidelity).")
flags.DEFINE_string("save_model", None, "With --workdir: write the model at --step (default the newest) as a new, "
                    "self-contained folder (parameters, BatchNorm statistics, config, the dataset's shape, names "
                    "and attribute vectors) that vaegan_jax.load and explore.py read without the dataset.")
distributed.define_flags()
flags.adopt_module_key_flags(distributed)  # listed by --help, not only --helpfull
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(FLAGS.workdir) == bool(FLAGS.compare):
    raise app.UsageError("give either --workdir W (one run) or --compare W1,W2,... (a table)")
  if FLAGS.export and not (FLAGS.workdir and FLAGS.out):
    raise app.UsageError("--export needs --workdir W and --out DIR (the folder for the PNG files)")
  if FLAGS.save_model and (not FLAGS.workdir or FLAGS.export):
    raise app.UsageError("--save_model DIR needs --workdir W (and no --export)")
  if FLAGS.verbosity == 0:
    logging.set_verbosity(logging.WARNING)
  if not distributed.initialize_from_flags("eval.py"):
    evaluate()
    return
  error = None
  if distributed.is_primary():
    try:
      evaluate()
    except SystemExit as e:
      error = e
  failure = distributed.primary_says("" if error is None else str(error.code))  # the others wait here
  if failure:
    raise error or SystemExit(f"process 0 failed: {failure}")


def evaluate():
  """eval.py's work, in one process: a table (--compare) or one run's metrics and figures."""
  from vaegan_jax import evaluators, trainer  # pylint: disable=import-outside-toplevel
  try:
    if FLAGS.compare:
      out = FLAGS.out or "runs/comparison"
      print(evaluators.compare(FLAGS.compare, out))
      print(f"wrote {out}/comparison.md and comparison.png")
      return
    if FLAGS.save_model:
      import vaegan_jax  # pylint: disable=import-outside-toplevel
      from vaegan_jax import restore  # pylint: disable=import-outside-toplevel
      restore.check_save_target(FLAGS.save_model)   # before the restore: a bad target costs nothing
      model = vaegan_jax.load(FLAGS.workdir, FLAGS.step)
      model.save(FLAGS.save_model)
      size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(FLAGS.save_model) for f in files)
      print(f"wrote {FLAGS.save_model}: {model}, {size / 1e6:.1f} MB; vaegan_jax.load({FLAGS.save_model!r}) "
            "needs no dataset")
      return
    if FLAGS.export:
      written = evaluators.export(FLAGS.workdir, FLAGS.step, evaluators.parse_export(FLAGS.export), FLAGS.out)
      for kind, count in written.items():
        print(f"wrote {count} PNG files to {FLAGS.out}/{kind}/")
      return
    results, folder = evaluators.evaluate(FLAGS.workdir, FLAGS.step)
  except trainer.EXPECTED_ERRORS as e:
    raise SystemExit(f"eval.py: {e}") from None
  print(f"step {results['step']}: method={results['method']} data={results['dataset']}")
  for key, value in results.items():
    if isinstance(value, float):
      print(f"  {key}: {value:.5g}")
  print(f"wrote {folder}/metrics.json and figures")


if __name__ == "__main__":
  app.run(main)
