"""The benchmark scripts run: benchmarks/gpu_session.py's dry run on the CPU, and the CelebA carry round trip."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import gpu_session, prepare_gpu_carry
from tests.conftest import REPO


def test_gpu_session_dry_run_on_cpu(tmp_path, tfds_dir):
  """Every stage of the GPU session on tiny configs: install check, benchmark (PyTorch rows where
  torch is installed, a note where not), train stopped at its step count, eval, the files a device
  call returns (at most 8)."""
  out = tmp_path / "out"
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  proc = subprocess.run([sys.executable, "benchmarks/gpu_session.py", "--device", "cpu", "--quick", "--budget", "900",
                         "--out", str(out), "--carry", str(tmp_path / "no_carry")],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  files = set(os.listdir(out))
  assert {"benchmark.json", "benchmark.md", "session.json", "session.log", "train_metrics.jsonl",
          "eval_metrics.json", "samples.png", "reconstructions.png"} == files, files
  session = json.loads((out / "session.json").read_text())
  assert all(stage["returncode"] == 0 for stage in session["stages"].values()), session
  assert session["train"]["steps"] == 4
  bench = json.loads((out / "benchmark.json").read_text())
  impls = {(r["model"], r["impl"]) for r in bench["rows"]}
  assert ("vaegan", "jax float32") in impls and ("tvae", "jax float32") in impls, impls
  for row in bench["rows"]:
    assert row["seconds_per_step"] > 0 and row["step_flops"] > 0 and row["steps"] == 3
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    assert ("vaegan", "torch eager NCHW") in impls
    assert bench["equivalence"][-1]["dtype"] == "float64" and bench["equivalence"][-1]["grad_rel_diff"] < 1e-5
  except ImportError:
    assert any("PyTorch rows skipped" in n for n in bench["notes"]), bench["notes"]
  assert "| vaegan | jax float32 |" in (out / "benchmark.md").read_text()
  assert json.loads((out / "eval_metrics.json").read_text())["samples/frechet_distance"] > 0


def test_celeba_webp_carry_rebuilds_the_npz_byte_for_byte(tmp_path):
  """pack (prepare_gpu_carry) then unpack (gpu_session): lossless faces, same arrays, same file bytes."""
  rng = np.random.default_rng(0)
  arrays = {"images": rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8),
            "attributes": rng.integers(-1, 2, (12, 40)).astype(np.int8),
            "attribute_names": np.asarray([f"a{i}" for i in range(40)]),
            "identity": np.arange(12, dtype=np.int32)}
  original = tmp_path / "faces.npz"
  np.savez_compressed(original, **arrays)
  packed = tmp_path / "carry.npz"
  prepare_gpu_carry.pack_celeba(str(original), str(packed))
  rebuilt = tmp_path / "rebuilt.npz"
  digest = gpu_session.unpack_celeba(str(packed), str(rebuilt))
  assert digest == hashlib.sha256(original.read_bytes()).hexdigest()
  with np.load(rebuilt) as npz:
    for k, v in arrays.items():
      np.testing.assert_array_equal(npz[k], v)


def test_summary_headline_is_against_the_best_torch_row_at_any_precision():
  """benchmarks/run.py's headline ratio: our fastest row over PyTorch's fastest, bf16 autocast
  included; the f32-vs-f32 ratio beside it (issue 37)."""
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  from benchmarks import run  # pylint: disable=import-outside-toplevel

  def row(impl, dtype, ips, batch=64):
    return {"model": "vaegan", "impl": impl, "dtype": dtype, "batch": batch, "images_per_second": ips,
            "seconds_per_step": batch / ips, "step_flops": None}
  rows = [row("jax float32", "float32", 6.0), row("jax bfloat16", "bfloat16", 7.0),
          row("torch eager NCHW", "float32", 5.0), row("torch eager channels_last", "float32", 8.0),
          row("torch eager channels_last bf16 autocast", "bfloat16 autocast", 20.0),
          row("torch.compile channels_last", "float32", 9.0)]
  out = run.summarise(rows)
  assert out["best_ours_over_best_torch"]["ratio"] == 7.0 / 20.0
  assert "bf16 autocast" in out["best_ours_over_best_torch"]["theirs"]
  assert out["best_f32_ours_over_best_f32_torch"]["ratio"] == 6.0 / 9.0
  assert out["best_ours_over_best_eager"]["ratio"] == 7.0 / 20.0
  assert out["best_ours_over_best_compile"]["ratio"] == 7.0 / 9.0
  assert out["batch_64_f32_ours_over_eager"]["ratio"] == 6.0 / 8.0


def test_bf16_step_flops_are_counted_like_the_f32_steps():
  """XLA's cost analysis counts oneDNN custom calls (the bf16 CPU step's convolutions on jaxlib
  0.12) as zero FLOPs; run.py then counts the program before XLA's passes, so the bf16 step of
  the same config has the f32 step's FLOPs (within 10%) and its MFU is not 1% (issue 37)."""
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  from benchmarks import run  # pylint: disable=import-outside-toplevel
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel

  mesh = parallel.make_mesh()
  flops = {d: run.JaxStep(run.load_config("vaegan_celeba:smoke"), 8, d, mesh).flops
           for d in ("float32", "bfloat16")}
  assert flops["float32"] > 0 and abs(flops["bfloat16"] / flops["float32"] - 1) < 0.1, flops
