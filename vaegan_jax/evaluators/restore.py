"""Restoring a train.py run for evaluation: its own saved config, its networks, a checkpoint."""

from __future__ import annotations

import os

import jax

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
    ValueError: the checkpoint's config is not one this version can build, or its arrays
      cannot be read (truncated, corrupt, or of another architecture); the message lists
      the other saved steps to try with ``--step``.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir} has no checkpoints/ folder: is it a train.py --workdir?")
  checkpointer = Checkpointer(directory, create=False, alone=True)
  try:
    saved = checkpointer.all_steps()
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint")
    if step not in saved:
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; saved: {saved}")
    others = [s for s in saved if s != step]
    hint = f"other saved steps: {others or 'none'} (eval.py --step N)"
    try:
      config = config_lib.from_json(checkpointer.restore_config(step))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"the config saved with checkpoint {step} in {directory} cannot be read "
                       f"({type(e).__name__}: {str(e)[:300]}); {hint}") from e
    try:
      run = trainer.setup(config, jax.local_devices())  # FileNotFoundError (e.g. missing data) passes as it is
    except ValueError as e:
      raise ValueError(f"the run in {workdir} (method {config.method!r}, data {config.data.name!r}) "
                       f"cannot be rebuilt by this version: {e}") from e
    try:
      state, _, _ = checkpointer.restore(step, run.abstract_state())
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"checkpoint {step} in {directory} cannot be restored ({type(e).__name__}: "
                       f"{str(e)[:300]}). It may be truncated, corrupt or of another architecture; {hint}") from e
  finally:
    checkpointer.close()
  return run, state, step
