"""Prepares ``.gpu_carry/``, what a lent GPU machine needs besides the checkout (see benchmarks/README.md).

  python benchmarks/prepare_gpu_carry.py            # wheels + CelebA, about 45 MB, once per session

The GPU image (Python 3.12, jax with CUDA, flax, optax, orbax, chex, torch) has no network and
lacks the packages the data pipeline reads with; a device call carries at most 64 MiB, and the
CelebA npz alone is 68.8 MB. So this writes, into the git-ignored folder ``.gpu_carry``:

* ``wheels/``: Python 3.12 manylinux wheels of what the image lacks, at the versions installed
  here (``pip download --no-deps``; ``promise``, which PyPI ships as source only, built here);
* ``celeba_webp.npz``: the 6000 CelebA faces, each a lossless WebP (about 5 KiB), with the
  npz's other arrays as they are. ``gpu_session.py`` rebuilds the original npz from it and
  checks its sha256 before training on it.

Needs network access to PyPI (this machine has it; the GPU machine does not).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import subprocess
import sys

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the data pipeline, train.py and eval.py import beyond the GPU image's packages
# (device tool's KINDS.md lists those), with their own requirements the image also lacks.
MISSING_ON_GPU = ("tensorflow-datasets", "array-record", "grain", "ml-collections", "mlxtend", "tensorboardX",
                  "dm-tree", "simple-parsing", "docstring-parser", "tensorflow-metadata", "googleapis-common-protos",
                  "toml", "termcolor", "immutabledict", "importlib_resources", "portpicker")
SOURCE_ONLY = ("promise",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def download_wheels(folder: str) -> None:
  os.makedirs(folder, exist_ok=True)
  for name in MISSING_ON_GPU:
    version = importlib.metadata.version(name)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", folder, f"{name}=={version}"]
    for p in PLATFORMS:
      cmd += ["--platform", p]
    cmd += ["--platform", "any"]
    subprocess.run(cmd, check=True)
  for name in SOURCE_ONLY:
    version = importlib.metadata.version(name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", folder, f"{name}=={version}"],
                   check=True)


def pack_celeba(npz_path: str, out_path: str) -> None:
  """Writes every face as lossless WebP bytes (one uint8 buffer + offsets) beside the other arrays."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with np.load(npz_path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  images = arrays.pop("images")
  blobs = []
  for face in images:
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="WEBP", lossless=True, quality=100, method=4)
    blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
  offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
  tmp = out_path + ".tmp.npz"
  np.savez(tmp, webp=np.concatenate(blobs), webp_offsets=offsets, image_shape=np.asarray(images.shape[1:]),
           array_order=np.asarray(["images"] + list(arrays)), **arrays)
  os.replace(tmp, out_path)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(_REPO, ".gpu_carry"))
  parser.add_argument("--celeba", default="", help="celeba_id200x30_64x64.npz (default: $VAEGAN_DATA_DIR/celeba "
                                                   "or ../shared/data/celeba)")
  args = parser.parse_args()
  npz = args.celeba or next((os.path.join(d, "celeba", "celeba_id200x30_64x64.npz")
                             for d in (os.environ.get("VAEGAN_DATA_DIR"), os.path.join(_REPO, "..", "shared", "data"))
                             if d and os.path.isfile(os.path.join(d, "celeba", "celeba_id200x30_64x64.npz"))), "")
  if not npz:
    raise SystemExit("prepare_gpu_carry.py: error: no celeba_id200x30_64x64.npz found; pass --celeba PATH")
  download_wheels(os.path.join(args.out, "wheels"))
  pack_celeba(npz, os.path.join(args.out, "celeba_webp.npz"))
  total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
  print(f"{args.out}: {total / 2 ** 20:.1f} MiB")


if __name__ == "__main__":
  main()
