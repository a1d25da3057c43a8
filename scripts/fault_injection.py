"""Fault injection: SIGKILL train.py at random moments, resume it, and compare with a clean run.

  python scripts/fault_injection.py                     # 20 kills (about 10 min on 2 CPU cores)
  python scripts/fault_injection.py --kills 2 --steps 24

One uninterrupted reference run, then per kill a fresh run of the same command that gets
SIGKILL at a random moment of its train loop (uniform over the reference loop's duration:
during compilation, a step, image writing or an asynchronous checkpoint write), followed by
the same command again, which resumes from the last complete checkpoint and runs to the end.
A kill "resumed exactly" when the final checkpoint (parameters, optimizer and BatchNorm
state, non-finite counters, random key, data position) is bit-identical to the reference's
and metrics.jsonl holds the same steps with the same loss values. Prints one line per kill
and "N of K resumed exactly"; exits 1 unless N == K. Runs offline on the embedded digits
(configs/default.py:smoke). tests/test_reliability.py runs a 2-kill variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
_VOLATILE = ("time", "train/images_per_second")  # metrics that legitimately differ between runs


def command(workdir: str, steps: int) -> list[str]:
  """The train.py command every run uses (the smoke networks, a checkpoint every 4 steps)."""
  return [sys.executable, str(REPO / "train.py"), "--config", f"{REPO}/configs/default.py:smoke",
          "--workdir", workdir, f"--config.train.num_steps={steps}", "--config.checkpoint.every_steps=4",
          "--config.train.log_every=2", "--config.train.image_every=6"]


def environment() -> dict[str, str]:
  """This environment plus XLA's persistent compilation cache (so each restart skips compiling)."""
  env = dict(os.environ)
  env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vaegan_jax_xla_cache"))
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
  return env


def run_to_end(workdir: str, steps: int, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
  """Runs the command to completion; returns (result, seconds until the loop began, seconds in all)."""
  start = time.perf_counter()
  proc = subprocess.Popen(command(workdir, steps), env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  loop_start = _wait_for_loop(workdir, proc)
  out, err = proc.communicate(timeout=1800)
  end = time.perf_counter()
  result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
  if result.returncode != 0:
    raise RuntimeError(f"train.py failed in {workdir}:\n{err[-3000:]}")
  return result, (loop_start or end) - start, end - start


def _wait_for_loop(workdir: str, proc: subprocess.Popen) -> float | None:
  """Polls until the train loop has begun (metrics.jsonl exists); the time then, or None if it ended."""
  path = os.path.join(workdir, "metrics.jsonl")
  while not os.path.exists(path):
    if proc.poll() is not None:
      return None
    time.sleep(0.01)
  return time.perf_counter()


def final_state(workdir: str):
  """The newest checkpoint as host numpy leaves, with its step."""
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import evaluators  # pylint: disable=import-outside-toplevel
  _, state, step = evaluators.restore_run(workdir)
  return step, [jax.device_get(x) for x in jax.tree.leaves(state)]


def metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [{k: v for k, v in json.loads(line).items() if k not in _VOLATILE} for line in f]


@dataclasses.dataclass
class Kill:
  """What one kill hit and how its resumed run ended."""

  index: int
  seconds_into_loop: float
  complete_checkpoints: list[int]
  partial_checkpoints: list[str]
  resumed_from: int | None
  exact: bool
  detail: str

  def line(self) -> str:
    where = f"during a checkpoint write ({', '.join(self.partial_checkpoints)})" if self.partial_checkpoints else (
        "before the first checkpoint" if not self.complete_checkpoints else
        f"after checkpoint {self.complete_checkpoints[-1]}")
    return (f"kill {self.index:2d}: {self.seconds_into_loop:5.2f} s into the loop, {where}; resumed from "
            f"{'scratch' if self.resumed_from is None else f'step {self.resumed_from}'}: "
            f"{'exact' if self.exact else 'DIFFERENT: ' + self.detail}")


def compare(reference: str, workdir: str) -> str:
  """'' when ``workdir`` ended exactly like ``reference``, else what differs."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  ref_step, ref_leaves = final_state(reference)
  step, leaves = final_state(workdir)
  if step != ref_step:
    return f"final step {step} != {ref_step}"
  different = sum(not np.array_equal(a, b) for a, b in zip(ref_leaves, leaves, strict=True))
  if different:
    return f"{different} of {len(leaves)} state arrays differ"
  if metrics(workdir) != metrics(reference):
    return "metrics.jsonl differs"
  return ""


def kill_once(index: int, reference: str, workdir: str, steps: int, loop_seconds: float, rng: random.Random,
              env: dict[str, str]) -> Kill:
  """One trial: start, SIGKILL at a random moment of the loop, look at the disk, resume, compare."""
  shutil.rmtree(workdir, ignore_errors=True)
  proc = subprocess.Popen(command(workdir, steps), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  if _wait_for_loop(workdir, proc) is None:
    raise RuntimeError(f"train.py ended before its loop began in {workdir}")
  delay = rng.uniform(0.0, loop_seconds)
  time.sleep(delay)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  ckpt_dir = os.path.join(workdir, "checkpoints")
  names = sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
  complete = sorted(int(n) for n in names if n.isdigit())
  partial = [n for n in names if not n.isdigit()]
  result, _, _ = run_to_end(workdir, steps, env)
  resumed = [line for line in result.stdout.splitlines() if line.startswith("resuming from step ")]
  resumed_from = int(resumed[0].split()[3]) if resumed else None
  detail = compare(reference, workdir)
  return Kill(index, delay, complete, partial, resumed_from, not detail, detail)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--steps", type=int, default=40, help="train steps of every run")
  parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
  parser.add_argument("--dir", default=None, help="where the runs go (default: a temporary folder)")
  args = parser.parse_args(argv)
  root = args.dir or tempfile.mkdtemp(prefix="vaegan_fault_injection_")
  env, rng = environment(), random.Random(args.seed)
  reference = os.path.join(root, "reference")
  shutil.rmtree(reference, ignore_errors=True)
  run_to_end(reference, args.steps, env)          # fills the compilation cache
  shutil.rmtree(reference)
  _, to_loop, total = run_to_end(reference, args.steps, env)
  loop_seconds = total - to_loop
  print(f"reference: {args.steps} steps, train loop {loop_seconds:.2f} s of {total:.2f} s", flush=True)
  kills = []
  for i in range(args.kills):
    kills.append(kill_once(i + 1, reference, os.path.join(root, f"kill_{i + 1}"), args.steps, loop_seconds, rng, env))
    print(kills[-1].line(), flush=True)
    shutil.rmtree(os.path.join(root, f"kill_{i + 1}"), ignore_errors=True)
  exact = sum(k.exact for k in kills)
  during_write = sum(bool(k.partial_checkpoints) for k in kills)
  print(f"{exact} of {len(kills)} resumed exactly ({during_write} kills landed during a checkpoint write, "
        f"{sum(not k.complete_checkpoints for k in kills)} before the first checkpoint)")
  if not args.dir:
    shutil.rmtree(root, ignore_errors=True)
  return 0 if exact == len(kills) else 1


if __name__ == "__main__":
  sys.exit(main())
