"""Where metrics go: a JSON-lines file and TensorBoard event files (tensorboardX)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends ``{"step", "time", metrics...}`` lines to ``workdir/metrics.jsonl`` and writes
  the same scalars (and image grids) to TensorBoard events under ``workdir/tensorboard``."""

  def __init__(self, workdir: str):
    os.makedirs(workdir, exist_ok=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
    self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"))

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
