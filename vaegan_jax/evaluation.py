"""Restoring a trained run for evaluation.

Only restoring lives here so far; the metrics (Fréchet distance, sharpness, attribute
arithmetic) arrive with the evaluation issue and will build on ``restore_run``.
"""

from __future__ import annotations

import os

from vaegan_jax import config as config_lib
from vaegan_jax import trainer
from vaegan_jax.checkpoint import Checkpointer


def restore_run(workdir: str, step: int | None = None):
  """Rebuilds a run from its own saved config and restores a checkpoint (nothing is written).

  Args:
    workdir: a folder written by ``train.py``.
    step: the checkpoint step; None for the newest.

  Returns:
    (run, state, step): ``run`` is a ``trainer.Run`` built from the saved config.

  Raises:
    FileNotFoundError: no checkpoints in ``workdir``, or none at ``step``.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir} has no checkpoints/ folder: is it a train.py --workdir?")
  checkpointer = Checkpointer(directory)
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint")
    if step not in checkpointer.all_steps():
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; saved: {checkpointer.all_steps()}")
    config = config_lib.from_json(checkpointer.restore_config(step))
    run = trainer.setup(config)
    state, _, _ = checkpointer.restore(step, run.abstract_state())
  finally:
    checkpointer.close()
  return run, state, step
