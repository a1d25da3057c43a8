"""Several processes, one run (jax.distributed): the launch settings, each process's rows of a batch,
and train.py / eval.py as 2 processes x 4 CPU devices (collectives through gloo) against one process
with 8 devices, with preemption and resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import REPO
from vaegan_jax import distributed, evaluators


# --- Settings: flags, environment and clusters -----------------------------------------------------

def test_a_single_process_starts_nothing():
  assert distributed.settings(env={}) is None
  assert distributed.settings(env={"SLURM_NTASKS": "1", "OMPI_COMM_WORLD_SIZE": "1"}) is None


def test_flags_win_over_the_environment_and_missing_values_are_left_to_jax():
  env = {"JAX_COORDINATOR_ADDRESS": "h0:99", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  assert distributed.settings(env=env) == {"coordinator_address": "h0:99", "num_processes": 4, "process_id": 3}
  assert distributed.settings(coordinator_address="h1:5", process_id=1, env=env) == {
      "coordinator_address": "h1:5", "num_processes": 4, "process_id": 1}
  assert distributed.settings(process_id=2, env={}) == {"process_id": 2}
  # --distributed alone, or a Slurm / Open MPI job of several tasks: JAX discovers everything
  assert distributed.settings(distributed=True, env={}) == {}
  assert distributed.settings(env={"SLURM_NTASKS": "16"}) == {}
  assert distributed.settings(env={"OMPI_COMM_WORLD_SIZE": "2"}) == {}
  assert distributed.settings(env={"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1"}) == {}
  assert distributed.settings(env={"TPU_WORKER_HOSTNAMES": "localhost"}) is None   # one host


def test_bad_settings_are_clear_errors():
  with pytest.raises(ValueError, match=r"process id 2 is not in \[0, 2\).*--process_id from 0 to 1"):
    distributed.settings(num_processes=2, process_id=2, env={})
  with pytest.raises(ValueError, match=r"\$JAX_PROCESS_ID='one' is not an integer"):
    distributed.settings(env={"JAX_PROCESS_ID": "one"})


def test_one_process_reads_the_whole_batch_and_runs_shared_steps_itself():
  assert distributed.process_rows(48) == (0, 48)
  assert distributed.primary_value(7) == 7
  assert distributed.primary_first(lambda: "ran", "a step") == "ran"
  assert distributed.is_primary()


def test_the_compilation_cache_is_judged_to_deadlock_only_for_multi_process_cpu_on_jaxlib_0_12_1_on():
  assert distributed.cache_deadlocks("cpu", 2, "0.12.1")
  assert distributed.cache_deadlocks("cpu", 8, "0.13.0")      # until a fixed release is tested
  assert distributed.cache_deadlocks("cpu", 2, "0.12.10")     # compared as numbers, not text
  for platform, processes, version in [("cpu", 2, "0.12.0"), ("cpu", 2, "0.12.0.1"), ("cpu", 2, "0.11.2"),
                                       ("cpu", 2, "0.10.2"), ("cpu", 1, "0.12.1"), ("gpu", 2, "0.12.1"),
                                       ("tpu", 16, "0.12.1")]:
    assert not distributed.cache_deadlocks(platform, processes, version), (platform, processes, version)


def _initialize_with(monkeypatch, platform, version, cache_dir="/tmp/cache"):
  """``distributed.initialize`` of 2 processes with JAX's side stubbed; returns the cache setting after."""
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: None)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "default_backend", lambda: platform)
  monkeypatch.setattr(distributed.jaxlib, "__version__", version)
  before = jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir
  try:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    assert distributed.initialize(coordinator_address="localhost:1", num_processes=2, process_id=0)
    return jax.config.jax_enable_compilation_cache
  finally:
    jax.config.update("jax_enable_compilation_cache", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])


def test_initialize_turns_the_compilation_cache_off_with_a_warning_where_it_deadlocks(monkeypatch):
  from absl import logging
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda fmt, *args: warnings.append(fmt % args))
  assert _initialize_with(monkeypatch, "cpu", "0.12.1") is False
  assert len(warnings) == 1 and "compilation cache (/tmp/cache) turned off" in warnings[0], warnings
  assert "jaxlib 0.12.1" in warnings[0] and "docs/distributed.md" in warnings[0]
  # the cases that keep it: another backend, an older jaxlib, and no cache to turn off (no warning)
  assert _initialize_with(monkeypatch, "gpu", "0.12.1") is True
  assert _initialize_with(monkeypatch, "cpu", "0.12.0") is True
  assert _initialize_with(monkeypatch, "cpu", "0.12.1", cache_dir=None) is True
  assert len(warnings) == 1, warnings


# --- train.py as 2 processes x 4 devices ------------------------------------------------------------

# Adam's and RMSProp's eps=1e-8 turn the all-reduce's float reordering (1e-7) into full-size updates
# of near-zero gradient entries; eps=1 keeps updates near-linear in the gradient, so that the
# comparison measures the parallelism (as in test_parallel.py).
SMOKE = ["train.py", "--config", "configs/default.py:smoke", "--config.optim.encoder.eps=1",
         "--config.optim.decoder.eps=1", "--config.optim.discriminator.eps=1",
         "--config.checkpoint.every_steps=1000", "--config.train.image_every=1000"]


def _env(tfds_dir: str, devices: int) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return {**env, "TFDS_DATA_DIR": tfds_dir, "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start_two(workdir, steps: int, tfds_dir: str, logs) -> list[subprocess.Popen]:
  port = _free_port()
  return [subprocess.Popen([sys.executable, *SMOKE, f"--workdir={workdir}", f"--config.train.num_steps={steps}",
                            f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
                           stdout=logs[i], stderr=subprocess.STDOUT, env=_env(tfds_dir, 4), cwd=REPO)
          for i in range(2)]


def _wait(procs, logs, timeout=600) -> list[str]:
  deadline = time.time() + timeout
  for p in procs:
    try:
      p.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
  texts = [open(log.name, encoding="utf-8", errors="replace").read() for log in logs]
  for p, text in zip(procs, texts):
    assert p.returncode == 0, text[-3000:]
  return texts


def _logged_steps(workdir) -> list[int]:
  path = workdir / "metrics.jsonl"
  return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


def _preempt_and_resume(tmp_path, tfds_dir):
  """Legs 1 and 2 of both tests below; returns (workdir, final step)."""
  workdir = tmp_path / "two"
  logs = [open(tmp_path / f"process{i}.log", "w+", encoding="utf-8") for i in range(2)]
  # 1. A long run; once it has trained a few steps, process 1 alone gets the preemption notice.
  procs = _start_two(workdir, 10_000, tfds_dir, logs)
  deadline = time.time() + 600
  while not [s for s in _logged_steps(workdir) if s >= 2] and time.time() < deadline and procs[0].poll() is None:
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGTERM)
  texts = _wait(procs, logs)
  saved = sorted(int(s) for s in os.listdir(workdir / "checkpoints"))
  assert len(saved) == 1 and 2 <= saved[0] < 10_000, saved       # the preemption checkpoint only
  stop = saved[0]
  for i, text in enumerate(texts):   # both processes stopped after the same step, with a checkpoint
    assert f"process {i}/2: stopped by SIGTERM after step {stop}; checkpoint {stop} is saved" in text, text[-2000:]
  assert max(_logged_steps(workdir)) <= stop
  # only process 0 writes logs and images (one TensorBoard writer)
  assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1

  # 2. The same command, two steps further: both processes resume from the checkpoint.
  final = stop + 2
  logs = [open(tmp_path / f"resume{i}.log", "w+", encoding="utf-8") for i in range(2)]
  texts = _wait(_start_two(workdir, final, tfds_dir, logs), logs)
  assert f"resuming from step {stop}" in texts[0] and "done:" in texts[0]
  assert "done:" not in texts[1]
  return workdir, final


def test_two_processes_stop_together_on_sigterm_and_resume(tfds_dir, tmp_path):
  """The fast variant of the test below (about 1.5 min on 2 cores instead of 3): no reference run."""
  workdir, final = _preempt_and_resume(tmp_path, tfds_dir)
  assert sorted(int(s) for s in os.listdir(workdir / "checkpoints"))[-1] == final


@pytest.mark.slow   # python -m pytest -m slow
def test_two_processes_stop_together_on_sigterm_resume_and_equal_one_process_with_8_devices(tfds_dir, tmp_path):
  workdir, final = _preempt_and_resume(tmp_path, tfds_dir)

  # 3. One process with all 8 devices, straight to the same step, on the same data.
  single = tmp_path / "one"
  out = subprocess.run([sys.executable, *SMOKE, f"--workdir={single}", f"--config.train.num_steps={final}"],
                       capture_output=True, text=True, env=_env(tfds_dir, 8), cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  _, two, _ = evaluators.restore_run(str(workdir), final)
  _, one, _ = evaluators.restore_run(str(single), final)
  assert int(two.step) == int(one.step) == final
  for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one), strict=True):   # params, batch stats, optimizer
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)

  # 4. eval.py as the same 2 processes: process 0 evaluates, process 1 waits for it; both exit 0.
  port = _free_port()
  logs = [open(tmp_path / f"eval{i}.log", "w+", encoding="utf-8") for i in range(2)]
  procs = [subprocess.Popen([sys.executable, "eval.py", f"--workdir={workdir}", f"--coordinator_address=localhost:{port}",
                             "--num_processes=2", f"--process_id={i}"],
                            stdout=logs[i], stderr=subprocess.STDOUT, env=_env(tfds_dir, 4), cwd=REPO)
           for i in range(2)]
  texts = _wait(procs, logs)
  assert f"step {final}: method=vaegan" in texts[0] and "step " not in texts[1]
  results = json.loads((workdir / "eval" / str(final) / "metrics.json").read_text())
  assert results["step"] == final and results["loss/kl"] == results["loss/kl"]   # written, not NaN


# --- Each process's rows: every method's batches, cut as 2 processes would read them ---------------

@pytest.mark.parametrize("name", ["default", "tvae_mnist", "semi_aae_mnist", "mlvae_mnist", "ccvae_mnist"])
def test_two_processes_read_disjoint_blocks_that_make_the_single_process_batch(name, tfds_dir, monkeypatch):
  from tests.conftest import load_config
  from vaegan_jax import methods
  c = load_config(name)
  c.data.data_dir = tfds_dir
  c.data.train_split = "train[:400]"   # a small pool keeps the test fast; batch 300 is in epoch 13
  c.train.batch_size = 16
  dataset = methods.get(c.method).train_dataset
  steps = (0, 1, 7, 300)
  whole = [dataset(c, 16, seed=5)[i] for i in steps]
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shares = []
  for p in range(2):
    monkeypatch.setattr(jax, "process_index", lambda p=p: p)
    assert distributed.process_rows(16) == (8 * p, 8)
    shares.append([dataset(c, 16, seed=5)[i] for i in steps])
  for i, batch in enumerate(whole):
    assert set(shares[0][i]) == set(batch)
    for key, value in batch.items():
      half = len(value) // 2   # ML-VAE's leading axis is groups: 4 groups of 4 digits
      assert len(shares[0][i][key]) == len(shares[1][i][key]) == half, key
      np.testing.assert_array_equal(np.concatenate([shares[0][i][key], shares[1][i][key]]), value, err_msg=key)
