"""The same VAE/GAN trained on the CelebA subset's npz and on those faces as a folder of JPEG files.

  VAEGAN_DATA_DIR=../shared/data python scripts/folder_vs_npz.py --steps 142 --out runs/folder_vs_npz

Writes the official train and test faces (partition 0 and 2) as JPEG files (quality 95) into
OUT/jpeg/train/ and OUT/jpeg/test/, trains configs/vaegan_celeba.py for --steps steps on the
npz (OUT/npz) and on the folder (OUT/folder, data.name=folder), runs eval.py's evaluation on
both, and then scores both models alike through the Python API: prior samples and
reconstructions of the same 660 npz test faces, Fréchet distance in the embedding of the
CelebA attribute classifier (the one eval.py trains for celeba64), pixel MSE of the
reconstructions, and the attribute classifier's agreement on them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_jpegs(npz_path: str, root: str) -> int:
  with np.load(npz_path) as npz:
    images, partition = npz["images"], npz["official_partition"]
  count = 0
  for i, part in enumerate(partition):
    split = {0: "train", 2: "test"}.get(int(part))
    if split:
      os.makedirs(os.path.join(root, split), exist_ok=True)
      Image.fromarray(images[i]).save(os.path.join(root, split, f"{i:06d}.jpg"), quality=95)
      count += 1
  return count


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=142)
  parser.add_argument("--out", default="runs/folder_vs_npz")
  args = parser.parse_args()
  from vaegan_jax import data, domain_classifier, evaluators, metrics  # pylint: disable=import-outside-toplevel
  import vaegan_jax  # pylint: disable=import-outside-toplevel

  data_root = os.environ.get(data.pipeline.DATA_ENV)
  if not data_root:
    raise SystemExit(f"set {data.pipeline.DATA_ENV} to the folder holding celeba/ (e.g. ../shared/data)")
  jpeg = os.path.join(args.out, "jpeg")
  if not os.path.isdir(jpeg):
    print("wrote", write_jpegs(os.path.join(data_root, "celeba", "celeba_id200x30_64x64.npz"), jpeg), "JPEG files")
  half = max(1, args.steps // 2)
  common = [f"--config.train.num_steps={args.steps}", f"--config.train.image_every={half}",
            f"--config.checkpoint.every_steps={half}"]
  runs = {"npz": [], "folder": ["--config.data.name=folder", f"--config.data.path={os.path.abspath(jpeg)}"]}
  for name, extra in runs.items():
    workdir = os.path.join(args.out, name)
    subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--config", os.path.join(REPO, "configs/vaegan_celeba.py"),
                    "--workdir", workdir, *common, *extra], check=True)
    evaluators.evaluate(workdir)

  config = vaegan_jax.load(os.path.join(args.out, "npz")).config
  test = data.split_arrays(config, "test")
  train = data.split_arrays(config, "train")
  classifier = evaluators.classifier_for(config, train, test)
  probs_test, test_embedding = domain_classifier.predict(classifier, test["image"], 200)
  rows = ["| trained on | FD(test, samples) | FD(test, reconstructions) | pixel MSE of reconstructions | "
          "attribute agreement, reconstructions |", "|---|---|---|---|---|"]
  for name in runs:
    model = vaegan_jax.load(os.path.join(args.out, name))
    samples = model.sample(len(test["image"]), seed=1)
    recon = model.reconstruct(test["image"])
    _, sample_embedding = domain_classifier.predict(classifier, samples, 200)
    probs_recon, recon_embedding = domain_classifier.predict(classifier, recon, 200)
    mse = float(np.mean(((recon.astype(np.float64) - test["image"]) / 127.5) ** 2))
    agreement = float(np.mean((probs_recon > 0.5) == (probs_test > 0.5)))
    rows.append(f"| {name} | {metrics.frechet_distance(test_embedding, sample_embedding):.1f} | "
                f"{metrics.frechet_distance(test_embedding, recon_embedding):.1f} | {mse:.4f} | {agreement:.3f} |")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
