"""Where metrics go: a JSON-lines file and TensorBoard event files (tensorboardX)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
from tensorboardX import SummaryWriter


def _truncate_jsonl(path: str, last_step: int) -> int:
  """Keeps the lines of ``path`` with ``step <= last_step``; returns how many were dropped.

  A run killed after its last checkpoint logged steps that its resumed run logs again, and a
  kill in the middle of a write leaves a partial last line: both go, so that the file holds
  each step once. The file is replaced atomically (write a copy, rename).
  """
  if not os.path.exists(path):
    return 0
  keep, dropped = [], 0
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        record = json.loads(line)
        if not line.endswith("\n") or record["step"] > last_step:
          raise ValueError
        keep.append(line)
      except (ValueError, KeyError, TypeError):
        dropped += 1
  if dropped:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(keep)
    os.replace(tmp, path)
  return dropped


class MetricWriter:
  """Appends ``{"step", "time", metrics...}`` lines to ``workdir/metrics.jsonl`` and writes
  the same scalars (and image grids) to TensorBoard events under ``workdir/tensorboard``.

  Args:
    workdir: the run folder.
    resume_step: the step the run starts from (0 for a new run, the checkpoint's step for a
      resumed one; None to keep everything): records of later steps, written by a killed
      run, are dropped from ``metrics.jsonl`` and purged in TensorBoard (``purge_step``), so
      each step appears once.
  """

  def __init__(self, workdir: str, resume_step: int | None = None):
    os.makedirs(workdir, exist_ok=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    if resume_step is not None:
      _truncate_jsonl(self.jsonl_path, resume_step)
    self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
    self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"),
                             purge_step=None if resume_step is None else resume_step + 1)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    record = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))

  def write_image(self, step: int, tag: str, grid: np.ndarray) -> None:
    """``grid``: u8[H, W, C] as made by ``images.make_grid``."""
    self._tb.add_image(tag, grid, int(step), dataformats="HWC")

  def close(self) -> None:
    self._jsonl.close()
    self._tb.close()
