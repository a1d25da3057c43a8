"""The one-shot GPU session: benchmark, then train and evaluate the paper's CelebA VAE/GAN.

On a lent GPU machine, in one device call (benchmarks/README.md says how to prepare and call):

  python3 benchmarks/gpu_session.py --out "$OUT"              # carries .gpu_carry/, 9 minutes

and its dry run on any CPU, every stage on tiny configs and the embedded MNIST digits
(tests/test_benchmarks.py runs it, so that it cannot rot):

  python benchmarks/gpu_session.py --device cpu --quick --out /tmp/session

Within ``--budget`` seconds it
1. installs the carried wheels (``.gpu_carry/wheels``) that the image lacks, into a private
   folder put on ``PYTHONPATH`` (nothing system-wide);
2. rebuilds the CelebA npz from ``.gpu_carry/celeba_webp.npz`` and checks its sha256 (or uses
   ``$VAEGAN_DATA_DIR`` where the data is already there);
3. runs ``benchmarks/run.py --device gpu`` (JAX f32/bf16 at batch 64 to 1024, PyTorch eager,
   channels_last with bf16 autocast, torch.compile), stopping its rows at a deadline;
4. trains ``configs/vaegan_celeba.py`` in the precision the benchmark found faster, for the
   time left, stopped by SIGTERM (train.py then saves a checkpoint and exits 0), and runs
   ``eval.py`` on it;
5. leaves in ``--out`` (at most 8 files, what a device call returns): benchmark.json,
   benchmark.md, session.json, session.log, train_metrics.jsonl, eval_metrics.json,
   reconstructions.png and samples.png.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELEBA_NPZ = "celeba_id200x30_64x64.npz"
CELEBA_SHA256 = "d9bbe96f27dae7de98486f6cc3f842d0be9735b2649601f43d6d29581a0770cb"  # data/builders.py RAW_FILES


class Session:
  """The session's clock, log and environment for its subprocesses."""

  def __init__(self, out: str, budget: float):
    self.start, self.budget, self.out = time.monotonic(), budget, out
    os.makedirs(out, exist_ok=True)
    self.log_file = open(os.path.join(out, "session.log"), "a", buffering=1)
    self.env = dict(os.environ, PYTHONUNBUFFERED="1")
    self.record: dict = {"stages": {}}

  def left(self) -> float:
    return self.budget - (time.monotonic() - self.start)

  def log(self, message: str) -> None:
    line = f"[{time.monotonic() - self.start:6.1f} s] {message}"
    print(line, flush=True)
    self.log_file.write(line + "\n")

  def run(self, name: str, cmd: list[str], timeout: float, stdout_to: str | None = None,
          stop_at: float | None = None) -> int:
    """Runs ``cmd`` from the repository root; SIGTERM at ``stop_at`` seconds (then SIGKILL at ``timeout``)."""
    self.log(f"{name}: {' '.join(cmd)} (timeout {timeout:.0f} s)")
    begin = time.monotonic()
    out = open(stdout_to, "w") if stdout_to else self.log_file
    proc = subprocess.Popen(cmd, cwd=_REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT if stdout_to is None
                            else self.log_file, start_new_session=True)
    terminated = False
    while proc.poll() is None:
      elapsed = time.monotonic() - begin
      if stop_at is not None and elapsed > stop_at and not terminated:
        self.log(f"{name}: SIGTERM after {elapsed:.0f} s")
        proc.send_signal(signal.SIGTERM)
        terminated = True
      if elapsed > timeout:
        self.log(f"{name}: killed after {elapsed:.0f} s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        break
      time.sleep(0.5)
    if stdout_to:
      out.close()
    seconds = time.monotonic() - begin
    self.record["stages"][name] = {"returncode": proc.returncode, "seconds": round(seconds, 1)}
    self.log(f"{name}: exit {proc.returncode} after {seconds:.0f} s")
    return proc.returncode


def install_wheels(session: Session, carry: str) -> None:
  """Carried wheels into a private --target folder on PYTHONPATH (only if something is missing)."""
  needed = ("tensorflow_datasets", "array_record", "grain", "ml_collections", "mlxtend", "tensorboardX")
  missing = [m for m in needed if subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True,
                                                 env=session.env).returncode]
  wheels = sorted(glob.glob(os.path.join(carry, "wheels", "*.whl")))
  if not missing:
    session.log("packages: all present, no wheels installed")
    return
  if not wheels:
    raise SystemExit(f"gpu_session.py: error: {missing} are missing and {carry}/wheels holds no wheels; "
                     "run benchmarks/prepare_gpu_carry.py and carry .gpu_carry")
  target = os.path.join(tempfile.gettempdir(), "vaegan_site")
  session.run("install wheels", [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                 "--no-compile", "--no-cache-dir", "--upgrade", "--target", target, *wheels], 300)
  session.env["PYTHONPATH"] = os.pathsep.join(p for p in (target, _REPO, session.env.get("PYTHONPATH")) if p)


def celeba_folder(session: Session, carry: str) -> str | None:
  """A folder holding celeba/celeba_id200x30_64x64.npz with its published sha256, or None."""
  for root in (session.env.get("VAEGAN_DATA_DIR"), os.path.join(_REPO, "..", "shared", "data")):
    if root and os.path.isfile(os.path.join(root, "celeba", CELEBA_NPZ)):
      session.log(f"CelebA: using {root}")
      return root
  packed = os.path.join(carry, "celeba_webp.npz")
  if not os.path.isfile(packed):
    session.log(f"CelebA: neither $VAEGAN_DATA_DIR nor {packed}; the CelebA legs are skipped")
    return None
  root = os.path.join(tempfile.gettempdir(), "vaegan_data")
  os.makedirs(os.path.join(root, "celeba"), exist_ok=True)
  path = os.path.join(root, "celeba", CELEBA_NPZ)
  digest = unpack_celeba(packed, path)
  if digest != CELEBA_SHA256:
    session.log(f"CelebA: the rebuilt npz has sha256 {digest}, not {CELEBA_SHA256} (another zlib deflates "
                "differently); the CelebA legs are skipped")
    return None
  session.log("CelebA: rebuilt from WebP, sha256 matches")
  return root


def unpack_celeba(packed: str, path: str) -> str:
  """Decodes the carried WebP faces and writes the original npz; returns its sha256."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with np.load(packed) as npz:
    blob, offsets = npz["webp"], npz["webp_offsets"]
    order = [str(k) for k in npz["array_order"]]
    arrays = {k: npz[k] for k in order if k != "images"}
  images = np.stack([np.asarray(Image.open(io.BytesIO(blob[a:b].tobytes())).convert("RGB"))
                     for a, b in zip(offsets[:-1], offsets[1:])])
  arrays["images"] = images
  with open(path + ".tmp", "wb") as f:
    np.savez_compressed(f, **{k: arrays[k] for k in order})
  os.replace(path + ".tmp", path)
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
  parser.add_argument("--quick", action="store_true", help="tiny configs and a few steps: a dry run of every stage")
  parser.add_argument("--budget", type=float, default=510.0, help="seconds for the whole session")
  parser.add_argument("--carry", default=os.path.join(_REPO, ".gpu_carry"))
  parser.add_argument("--out", default=os.environ.get("OUT", os.path.join(_REPO, "runs", "gpu_session")))
  args = parser.parse_args(argv)
  session = Session(args.out, args.budget)
  session.record.update(device=args.device, quick=args.quick, budget=args.budget)
  install_wheels(session, args.carry)
  # The dry run trains on the embedded MNIST digits (CelebA's unpacking has its own test).
  data_root = None if args.quick else celeba_folder(session, args.carry)
  if data_root:
    session.env["VAEGAN_DATA_DIR"] = data_root
  work = tempfile.mkdtemp(prefix="vaegan_session_")
  session.env.setdefault("TFDS_DATA_DIR", os.path.join(work, "tfds"))

  # 3. The benchmark: about half of the session.
  bench_json = os.path.join(args.out, "benchmark.json")
  bench = [sys.executable, "benchmarks/run.py", "--device", args.device, "--out", bench_json,
           "--deadline", str(int(0.5 * session.left()))]
  if args.quick:
    bench += ["--quick", "--only", "vaegan,tvae,pipeline"]
  bench_md = os.path.join(args.out, "benchmark.md")
  session.run("benchmark", bench, 0.55 * session.left(), stdout_to=bench_md)
  if os.path.isfile(bench_json):  # run.py saves after every row; a run cut short still gets its table
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run as benchmark  # pylint: disable=import-outside-toplevel
    with open(bench_json) as f, open(bench_md, "a") as md:
      md.write("\n\n" + benchmark.markdown(json.load(f)) + "\n")

  # 4. Train the paper's VAE/GAN on CelebA (the embedded MNIST digits where CelebA is absent).
  config = "configs/vaegan_celeba.py" if data_root else "configs/default.py"
  dtype = "float32"
  if os.path.isfile(bench_json):
    with open(bench_json) as f:
      rows = [r for r in json.load(f)["rows"] if r["model"] == "vaegan" and r["impl"].startswith("jax") and r["batch"] == 64]
    if rows:
      dtype = min(rows, key=lambda r: r["seconds_per_step"])["dtype"]
  workdir = os.path.join(work, "run")
  train = [sys.executable, "train.py", f"--config={config}{':smoke' if args.quick else ''}", f"--workdir={workdir}",
           f"--config.model.dtype={dtype}"]
  if args.quick:
    train += ["--config.train.num_steps=4", "--config.checkpoint.every_steps=2"]
  else:  # run until stopped; log and save rarely enough not to slow a fast device
    train += ["--config.train.num_steps=37500", "--config.train.log_every=100", "--config.train.image_every=2000",
              "--config.checkpoint.every_steps=2000"]
  eval_reserve = 60.0 if args.quick else 100.0
  train_time = max(30.0, session.left() - eval_reserve)
  session.run("train", train, train_time + 60, stop_at=None if args.quick else train_time)
  session.record["train"] = {"config": config, "dtype": dtype}
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.isfile(metrics):
    with open(metrics) as f:
      lines = [json.loads(l) for l in f if l.strip()]
    if lines:
      session.record["train"].update(steps=lines[-1].get("step"), images_per_second=lines[-1].get("train/images_per_second"))
    shutil.copy(metrics, os.path.join(args.out, "train_metrics.jsonl"))

  # 5. Evaluate it.
  if glob.glob(os.path.join(workdir, "checkpoints", "*")):
    session.run("eval", [sys.executable, "eval.py", f"--workdir={workdir}"], max(30.0, session.left()))
    found = sorted(glob.glob(os.path.join(workdir, "eval", "*", "metrics.json")))
    if found:
      folder = os.path.dirname(found[-1])
      for name in ("metrics.json", "reconstructions.png", "samples.png"):
        if os.path.isfile(os.path.join(folder, name)):
          shutil.copy(os.path.join(folder, name),
                      os.path.join(args.out, "eval_metrics.json" if name == "metrics.json" else name))
  session.record["seconds"] = round(time.monotonic() - session.start, 1)
  with open(os.path.join(args.out, "session.json"), "w") as f:
    json.dump(session.record, f, indent=1)
  session.log(f"done: {sorted(os.listdir(args.out))}")
  shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
