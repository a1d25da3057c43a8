"""Explore a trained checkpoint's latent space in the browser.

  python explore.py --workdir runs/vaegan_celeba               # newest checkpoint, port 8000
  python explore.py --workdir runs/mlvae_mnist --step 5000 --port 8080
  python explore.py --workdir models/mine                      # a model folder: no dataset needed

Prints the address (http://127.0.0.1:PORT/) and serves until Ctrl-C. The page shows a test
image (or your upload, made as the dataset's images are, or a prior draw), its
reconstruction, and the decode of the edited code: sliders along attribute vectors
(CelebA's 40, as eval.py computes them), the principal components of the test codes, CCVAE's
label blocks between their prior locations; a blend towards a second image (interpolation, or
ML-VAE's content of another group); a PNG download. Decoding runs through the model's jitted
decoder on the available device (the CPU is enough). See docs/explorer.md.

Listens on 127.0.0.1 only, unless --host says otherwise. The run is rebuilt from its saved
config as eval.py does. Without its dataset (a model folder from eval.py --save_model, or a
workdir whose data is not on this machine) the page offers prior samples and uploads instead
of test images, and says so.
"""

import sys

from absl import app, flags, logging

flags.DEFINE_string("workdir", None, "A train.py --workdir, or a model folder (eval.py --save_model), to explore.",
                    required=True)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_integer("port", 8000, "Port to listen on (0: any free port).")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on. Anything but 127.0.0.1 / localhost lets other "
                    "machines use the model and upload images.")
flags.DEFINE_integer("num_test", 500, "Test images offered (the first of the eval split; also the codes the "
                     "principal components come from).")
flags.DEFINE_integer("max_upload_mb", 8, "Largest upload accepted, in MiB.")
FLAGS = flags.FLAGS



def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.num_test < 2:
    raise app.UsageError(f"--num_test={FLAGS.num_test}: the principal components need at least 2 test images")
  if FLAGS.max_upload_mb < 1:
    raise app.UsageError(f"--max_upload_mb={FLAGS.max_upload_mb} must be at least 1")
  if FLAGS.verbosity == 0:
    logging.set_verbosity(logging.WARNING)
  import vaegan_jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax.explorer import server  # pylint: disable=import-outside-toplevel
  try:   # every check before the server starts: a bad workdir or model is an error here
    print(f"explore.py: restoring {FLAGS.workdir} ...", flush=True)
    model = vaegan_jax.load(FLAGS.workdir, FLAGS.step)
    print(f"explore.py: {model}; " + (f"encoding {FLAGS.num_test} test images, " if model.data_available else
          f"no test images ({model.unavailable}), ") + "finding the directions ...", flush=True)
    explorer = server.Explorer.from_model(model, FLAGS.num_test)
    http = server.make_server(explorer, FLAGS.host, FLAGS.port, FLAGS.max_upload_mb * 1024 * 1024)
  except (FileNotFoundError, ValueError, OSError) as e:
    raise SystemExit(f"explore.py: {e}") from None
  host, port = http.server_address[:2]
  if FLAGS.host not in server.LOOPBACK:
    print("=" * 78 + f"\nWARNING: listening on {FLAGS.host}, not 127.0.0.1: anyone who can reach this machine on "
          f"port {port} can run this model and upload images to it. Use --host=127.0.0.1 unless you mean "
          "it.\n" + "=" * 78, file=sys.stderr, flush=True)
  shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
  print(f"explore.py: {len(explorer.directions)} sliders; open http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
  try:
    http.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    http.server_close()


if __name__ == "__main__":
  app.run(main)
