"""Preemption, crashes, divergence, a second writer and bad input never lose a run."""

import hashlib
import importlib.util
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import REPO, load_config
from vaegan_jax import data, trainer
from vaegan_jax.checkpoint import Checkpointer, CheckpointError
from vaegan_jax.workdir import WorkdirBusyError, WorkdirLock, check_free

_spec = importlib.util.spec_from_file_location("fault_injection", REPO / "scripts" / "fault_injection.py")
fault_injection = sys.modules["fault_injection"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault_injection)

STEPS = 16  # every subprocess run: 16 smoke steps, a checkpoint every 4


def snapshot(folder: pathlib.Path) -> dict:
  """{relative path: sha256} of every file under ``folder`` (missing folder: {})."""
  out = {}
  for path in sorted(folder.rglob("*")) if folder.exists() else []:
    if path.is_file():
      out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
  return out


def _env(tfds_dir):
  return {**fault_injection.environment(), "TFDS_DATA_DIR": tfds_dir}


@pytest.fixture(scope="module")
def reference_run(tfds_dir, tmp_path_factory):
  """An uninterrupted subprocess run of ``fault_injection.command`` (STEPS steps): (workdir, loop seconds)."""
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  _, to_loop, total = fault_injection.run_to_end(workdir, STEPS, _env(tfds_dir))
  return workdir, total - to_loop


@pytest.fixture(scope="module")
def reference(reference_run):
  return reference_run[0]


@pytest.fixture
def run_copy(smoke_run, tmp_path):
  """A copy of conftest's finished smoke run (checkpoints 3 and 6) that a test may change."""
  workdir = tmp_path / "run"
  shutil.copytree(smoke_run, workdir)
  return workdir


# --- Crashes: SIGKILL at random moments -------------------------------------------------------

def test_a_random_sigkill_resumes_exactly(reference_run, tfds_dir, tmp_path):
  """The fast variant of scripts/fault_injection.py (which reports N of 20)."""
  reference, loop_seconds = reference_run
  kill = fault_injection.kill_once(1, reference, str(tmp_path / "kill"), STEPS, loop_seconds, random.Random(1),
                                   _env(tfds_dir))
  assert kill.exact, kill.line()


def test_a_partial_checkpoint_left_by_a_kill_is_ignored_and_cleaned(run_copy, smoke_config):
  # What a SIGKILL in the middle of an asynchronous save leaves: orbax's temporary folder.
  partial = run_copy / "checkpoints" / "9.orbax-checkpoint-tmp-1234"
  shutil.copytree(run_copy / "checkpoints" / "6", partial)
  (partial / "state" / "_METADATA").write_text("{truncated")
  ckpt = Checkpointer(str(run_copy / "checkpoints"), create=False)
  assert ckpt.latest_step() == 6   # never taken for a complete checkpoint
  ckpt.close()
  smoke_config.train.num_steps = 9
  state = trainer.train_and_evaluate(smoke_config, str(run_copy))
  assert int(state.step) == 9
  assert sorted(os.listdir(run_copy / "checkpoints")) == ["3", "6", "9"]


# --- Preemption: SIGTERM / SIGINT, and one writer per workdir -----------------------------------

@pytest.mark.parametrize("sig, resume", [(signal.SIGTERM, True), (signal.SIGINT, False)])
def test_a_signal_checkpoints_exits_0_and_the_rerun_resumes_exactly(sig, resume, reference, smoke_config, tfds_dir,
                                                                    tmp_path):
  workdir = str(tmp_path / "run")
  long = fault_injection.command(workdir, 100_000)   # would take hours: only the signal ends it
  proc = subprocess.Popen(long, env=_env(tfds_dir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  try:
    metrics = pathlib.Path(workdir) / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text()):   # a few steps done
      assert proc.poll() is None, proc.communicate()[1][-3000:]
      time.sleep(0.05)

    # A second writer on the same workdir is refused, naming the holder; nothing is written.
    # The holder is paused meanwhile (SIGSTOP keeps its flock), so that its own checkpoint
    # saves cannot change the folder between the two snapshots.
    proc.send_signal(signal.SIGSTOP)
    before = snapshot(pathlib.Path(workdir) / "checkpoints")
    smoke_config.train.num_steps = 3
    with pytest.raises(WorkdirBusyError, match=f"in use by another train.py \\(pid {proc.pid} "):
      trainer.train_and_evaluate(smoke_config, workdir)
    assert snapshot(pathlib.Path(workdir) / "checkpoints") == before
    proc.send_signal(signal.SIGCONT)

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
  finally:
    proc.kill()
  assert proc.returncode == 0, err[-3000:]
  stopped = int(out.split(f"stopped by {sig.name} after step ")[1].split(";")[0])
  assert 2 <= stopped < STEPS
  assert f"checkpoint {stopped} is saved" in out and "Run the same command again to resume" in out
  assert str(stopped) in os.listdir(os.path.join(workdir, "checkpoints"))
  check_free(workdir)   # the lock went with the process
  if not resume:         # (the resume is the same for both signals; checked once to save CI time)
    return

  result, _, _ = fault_injection.run_to_end(workdir, STEPS, _env(tfds_dir))
  assert f"resuming from step {stopped} " in result.stdout
  ref_step, ref_leaves = fault_injection.final_state(reference)
  step, leaves = fault_injection.final_state(workdir)
  assert step == ref_step == STEPS
  for a, b in zip(ref_leaves, leaves, strict=True):
    np.testing.assert_array_equal(a, b)


def test_the_lock_is_exclusive_and_released(tmp_path):
  lock = WorkdirLock(str(tmp_path / "w"))
  lock.acquire()
  owner = json.loads((tmp_path / "w" / "train.lock").read_text())
  assert owner["pid"] == os.getpid()
  with pytest.raises(WorkdirBusyError, match=f"pid {os.getpid()}"):
    check_free(str(tmp_path / "w"))
  with pytest.raises(WorkdirBusyError, match="another --workdir"):
    WorkdirLock(str(tmp_path / "w")).acquire()
  assert json.loads((tmp_path / "w" / "train.lock").read_text()) == owner   # the refusal erased nothing
  lock.release()
  check_free(str(tmp_path / "w"))
  with WorkdirLock(str(tmp_path / "w")):
    pass


# --- Divergence: NaN planted in the data ----------------------------------------------------------

def _poison(monkeypatch, steps: set[int]):
  """Makes the train iterator plant a NaN in the batches of ``steps`` (1-based)."""
  real = data.train_iterator

  class Poisoned:
    def __init__(self, it, offset):
      self.it, self.step = it, offset

    def __next__(self):
      batch = dict(next(self.it))
      self.step += 1
      if self.step in steps:
        batch["image"] = batch["image"].astype(np.float32)
        batch["image"][0, 0, 0, 0] = np.nan
      return batch

    def get_state(self):
      return self.it.get_state()

  def train_iterator(config, global_batch, seed, state=None, dataset=None):
    assert state is None, "poisoned runs start afresh"
    return Poisoned(real(config, global_batch, seed, state, dataset), 0)

  monkeypatch.setattr(trainer.data, "train_iterator", train_iterator)


def test_an_isolated_nan_batch_is_skipped_counted_and_logged(monkeypatch, smoke_config, tmp_path):
  _poison(monkeypatch, {3})
  smoke_config.train.max_consecutive_nonfinite = 2
  state = trainer.train_and_evaluate(smoke_config, str(tmp_path / "run"))
  assert (int(state.step), int(state.nonfinite_steps), int(state.nonfinite_streak)) == (6, 1, 0)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))
  lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [l["train/nonfinite_steps"] for l in lines] == [0, 1, 1]
  assert all(np.isfinite(l["train/loss_encoder"]) for l in lines)   # window means over finite steps


def test_k_nan_steps_in_a_row_stop_the_run_naming_the_step_and_keep_the_last_good_checkpoint(
    monkeypatch, smoke_config, tmp_path):
  smoke_config.train.num_steps = 3
  good = trainer.train_and_evaluate(smoke_config, str(tmp_path / "clean"))
  _poison(monkeypatch, {4, 5, 6, 7, 8})
  smoke_config.train.num_steps = 12
  smoke_config.train.max_consecutive_nonfinite = 2
  with pytest.raises(trainer.DivergedError, match=r"2 steps in a row \(4 to 5\).*stops at step 5.*Checkpoint 3 "):
    trainer.train_and_evaluate(smoke_config, str(tmp_path / "run"))
  ckpt = Checkpointer(str(tmp_path / "run" / "checkpoints"), create=False)
  assert ckpt.all_steps() == [3]
  restored, _, _ = ckpt.restore(3, trainer.setup(smoke_config).abstract_state())
  ckpt.close()
  for a, b in zip(jax.tree.leaves(jax.device_get(restored)), jax.tree.leaves(jax.device_get(good)), strict=True):
    np.testing.assert_array_equal(a, b)


# --- Bad input: a clear error before any compute, nothing on disk changed ------------------------

def _cli(args, tfds_dir, **env):
  return subprocess.run([sys.executable, "train.py", *args], capture_output=True, text=True, cwd=REPO,
                        env={**_env(tfds_dir), **env}, timeout=600)


@pytest.mark.parametrize("flag, message", [
    ("--config.train.nmu_steps=3", "nmu_steps"),                       # unknown (mistyped) key
    ("--config.train.num_steps=ten", "num_steps"),                     # wrong type
    ("--config.optim.encoder.learning_rate=-0.001", "config.optim.encoder.learning_rate=-0.001 must be positive"),
    ("--config.balance.margin=-1.0", "config.balance.margin=-1.0 must be >= 0"),
    ("--config.method=vaegn", "config.method='vaegn' is not one of"),
    ("--config.model.encoder_features=(8,8,8,8,8)", "28x28 images are too small for the 5 stride-2 layers of the encoder"),
    ("--config.train.batch_size=5000", "exceeds the 4500 training examples"),
])
def test_train_py_refuses_bad_config_before_any_compute(flag, message, run_copy, tfds_dir):
  before = snapshot(run_copy)
  out = _cli(["--config", "configs/default.py:smoke", "--workdir", str(run_copy), flag], tfds_dir)
  assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  assert snapshot(run_copy) == before


def test_a_batch_that_does_not_split_over_the_devices_is_refused(tmp_path, tfds_dir):
  out = _cli(["--config", "configs/default.py:smoke", "--workdir", str(tmp_path / "new"),
              "--config.train.batch_size=12"], tfds_dir, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  assert out.returncode != 0, out.stderr[-2000:]
  assert "global batch size 12 is not divisible by the 8 devices" in out.stderr and "multiple of 8" in out.stderr
  assert not (tmp_path / "new").exists()


def test_missing_and_corrupt_raw_dataset_files_are_named(smoke_config, tmp_path):
  c = load_config("vaegan_celeba")
  c.data.data_dir = str(tmp_path / "tfds")
  c.data.manual_dir = str(tmp_path / "celeba")
  with pytest.raises(FileNotFoundError, match="celeba_id200x30_64x64.npz is missing"):
    trainer.train_and_evaluate(c, str(tmp_path / "run"))
  (tmp_path / "celeba").mkdir()
  (tmp_path / "celeba" / "celeba_id200x30_64x64.npz").write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(data.DataError, match="truncated or corrupt .* expected 68,803,751 bytes"):
    trainer.train_and_evaluate(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


def test_corrupt_prepared_data_is_named_with_the_folder_to_delete(smoke_config, tfds_dir, tmp_path):
  shutil.copytree(os.path.join(tfds_dir, "mnist5k"), tmp_path / "tfds" / "mnist5k")
  train_file = next((tmp_path / "tfds" / "mnist5k").rglob("*train.array_record*"))
  with open(train_file, "r+b") as f:
    f.truncate(train_file.stat().st_size // 2)
  smoke_config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(data.DataError, match="cannot be read .* Delete that folder"):
    trainer.train_and_evaluate(smoke_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change", ["method", "architecture"])
def test_a_checkpoint_of_another_model_or_architecture_is_refused(change, run_copy, smoke_config):
  before = snapshot(run_copy)
  if change == "method":
    smoke_config.method, smoke_config.loss.llike = "vae", "pixel"
  else:
    smoke_config.model.latent_dim = 16
  with pytest.raises(ValueError, match="another model or dataset.*(method|latent_dim)"):
    trainer.train_and_evaluate(smoke_config, str(run_copy))
  assert snapshot(run_copy) == before


def test_auto_dtype_is_resolved_saved_and_may_change_on_resume(run_copy, smoke_config, monkeypatch):
  """``model.dtype="auto"`` (the 64x64 configs): the checkpoint saves the dtype it resolved to,
  the caller's config stays "auto", and a run saved in another dtype goes on (a resume on a
  machine that resolves "auto" otherwise): the dtype is no part of what a checkpoint is."""
  from vaegan_jax import parallel, restore  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(parallel, "_onednn_takes_bf16_convolutions", lambda: True)   # as jaxlib 0.12 does
  smoke_config.model.dtype = "auto"
  smoke_config.train.num_steps = 9          # run_copy: checkpoints 3 and 6, trained in float32
  state = trainer.train_and_evaluate(smoke_config, str(run_copy))
  assert int(state.step) == 9 and smoke_config.model.dtype == "auto"
  checkpoints = Checkpointer(str(run_copy / "checkpoints"), create=False)
  try:
    assert [checkpoints.restore_config(s)["model"]["dtype"] for s in (6, 9)] == ["float32", "bfloat16"]
  finally:
    checkpoints.close()
  assert restore.restore_run(str(run_copy))[0].config.model.dtype == "bfloat16"


def test_a_truncated_checkpoint_is_refused_offering_the_previous_one(run_copy, smoke_config):
  victim = max((run_copy / "checkpoints" / "6" / "state").rglob("*"), key=lambda p: p.stat().st_size
               if p.is_file() else -1)
  with open(victim, "r+b") as f:
    f.truncate(victim.stat().st_size // 3)
  before = snapshot(run_copy)
  smoke_config.train.num_steps = 9
  with pytest.raises(CheckpointError, match=r"checkpoint 6 .* cannot be read.*Checkpoint 3 is the newest one "
                                            r"before it: move the broken one aside \(mv "):
    trainer.train_and_evaluate(smoke_config, str(run_copy))
  assert snapshot(run_copy) == before
  # Following the advice resumes from checkpoint 3.
  shutil.move(run_copy / "checkpoints" / "6", run_copy / "broken_checkpoint_6")
  assert int(trainer.train_and_evaluate(smoke_config, str(run_copy)).step) == 9


@pytest.mark.parametrize("resume_step, kept", [(4, [2, 4]), (0, [])])
def test_a_resumed_run_drops_what_the_killed_run_logged_after_its_checkpoint(resume_step, kept, tmp_path):
  from vaegan_jax.metric_writers import MetricWriter
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "train/kl": 1.0}) + "\n" for s in (2, 4, 6)) + '{"step": 8, "tr')
  writer = MetricWriter(str(tmp_path), resume_step=resume_step)   # 0: killed before its first checkpoint
  writer.write_scalars(resume_step + 2, {"train/kl": 2.0})
  writer.close()
  assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == kept + [resume_step + 2]
