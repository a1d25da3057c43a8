"""Checkpoints with orbax: the train state, the data-iterator position and the config.

Orbax writes each step to a temporary folder and renames it when complete, so a crash in
the middle of a save never replaces the last good checkpoint; the train loop also refuses
to save a state with non-finite parameters.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores ``{state, data, config}`` under ``directory/<step>``.

  Args:
    directory: where the step folders live (created if missing).
    max_to_keep: keep the newest N steps.
    async_save: write in a background thread (``wait_until_finished`` before exit).
    create: create ``directory`` if missing (False for read-only use such as evaluation).
  """

  def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True, create: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                             enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, config: dict) -> None:
    """Starts saving (asynchronously); ``state`` must be fully finite (checked by the caller)."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config)))

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
    """Restores ``(state, data_state, config)``; ``abstract_state`` gives structure and sharding.

    Raises:
      FileNotFoundError: no checkpoint at ``step``.
    """
    if step not in self._manager.all_steps():
      raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; "
                              f"saved steps: {self.all_steps() or 'none'}")
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))
    return out["state"], out["data"], out["config"]

  def restore_config(self, step: int) -> dict:
    """Only the config saved with ``step`` (cheap; no arrays are read)."""
    return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_with_sharding(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """``jax.ShapeDtypeStruct`` leaves carrying ``sharding``: the restore target orbax needs."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
