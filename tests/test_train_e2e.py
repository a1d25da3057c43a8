"""train.py and eval.py end to end on the embedded real digits."""

import json
import os
import subprocess
import sys

from PIL import Image

from tests.conftest import REPO


def _run(args, tfds_dir, cache_dir=None):
  env = {**os.environ, "TFDS_DATA_DIR": tfds_dir}
  if cache_dir:
    env["VAEGAN_CACHE_DIR"] = cache_dir
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


def test_train_py_smoke_leaves_checkpoints_metrics_images(tfds_dir, tmp_path):
  workdir = tmp_path / "run"
  out = _run(["train.py", "--config", "configs/default.py:smoke", "--workdir", str(workdir)], tfds_dir)
  assert out.returncode == 0, out.stderr[-3000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]
  for key in ("train/kl", "train/llike", "train/loss_gan", "train/loss_encoder", "train/loss_decoder",
              "train/loss_discriminator", "train/d_x", "train/d_recon", "train/d_prior",
              "train/update_decoder", "train/update_discriminator", "train/images_per_second"):
    assert all(key in l for l in lines), key
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  for name in ("reconstructions", "samples"):
    image = Image.open(workdir / "images" / f"{name}_0000006.png")
    assert image.size == (4 * 30 + 2, 4 * 30 + 2) and image.mode == "L"
    assert len(set(image.getdata())) > 10   # not a blank or constant grid

  # eval.py writes metrics and figures for the newest checkpoint, and says clearly what is wrong.
  out = _run(["eval.py", "--workdir", str(workdir)], tfds_dir, cache_dir=str(tmp_path / "cache"))
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((workdir / "eval" / "6" / "metrics.json").read_text())
  assert (results["step"], results["method"], results["dataset"], results["num_test"]) == (6, "vaegan", "mnist5k", 500)
  assert 0.1 < results["classifier"]["test_accuracy"] <= 1.0    # better than chance, even after 1 epoch
  for key in ("loss/kl", "loss/llike", "loss/elbo", "loss/pixel_mse", "loss/dis_l_mse",
              "samples/frechet_distance", "samples/kernel_distance", "samples/sharpness_ratio",
              "reconstructions/frechet_distance", "reconstructions/sharpness_ratio"):
    assert isinstance(results[key], float) and results[key] == results[key], key   # present, not NaN
  assert results["loss/elbo"] == -(results["loss/kl"] + results["loss/llike"])
  for name in ("reconstructions", "samples", "interpolation"):
    assert Image.open(workdir / "eval" / "6" / f"{name}.png").size[0] > 28
  out = _run(["eval.py", "--workdir", str(tmp_path / "nothing")], tfds_dir)
  assert out.returncode != 0 and "no checkpoints/ folder" in out.stderr
