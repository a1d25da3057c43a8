"""Checkpoints with orbax: the train state, the data-iterator position and the config.

Orbax writes each step to a temporary folder and renames it when complete, so a crash in
the middle of a save (SIGKILL, power loss) never replaces or shadows the last good
checkpoint: ``latest_step`` only sees renamed, complete steps, and the run's writer removes
leftover temporary folders when it opens the directory. The train loop also refuses to save
a state with non-finite parameters. A checkpoint that is complete but unreadable (truncated
or corrupted later on disk) raises ``CheckpointError`` naming the previous one to resume from.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint cannot be read back; the message names the previous one to resume from."""


class Checkpointer:
  """Saves and restores ``{state, data, config}`` under ``directory/<step>``.

  Args:
    directory: where the step folders live (created if missing).
    max_to_keep: keep the newest N steps.
    async_save: write in a background thread (``wait_until_finished`` before exit).
    create: open as the run's writer: create ``directory`` if missing and delete temporary
      folders of saves that a killed writer left unfinished. False for read-only use
      (evaluation, checks before the workdir lock is taken), which changes nothing on disk.
    alone: this process alone uses the checkpoints (evaluation on process 0 of several):
      no barrier waits for the other processes. By default, with ``jax.distributed``,
      every process must open, save and restore together, as orbax expects.
  """

  def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True, create: bool = True,
               alone: bool = False):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                             cleanup_tmp_directories=create,
                                             enable_async_checkpointing=async_save,
                                             multiprocessing_options=this_process() if alone else
                                             ocp.options.MultiprocessingOptions()))

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
      CheckpointError: its files cannot be read as ``abstract_state`` (truncated, corrupt,
        or of another architecture or version).
    """
    if step not in self._manager.all_steps():
      raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; "
                              f"saved steps: {self.all_steps() or 'none'}")
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore(),
          config=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except  # orbax/tensorstore raise many types
      raise self.unreadable(step, e) from e
    if not isinstance(out["data"], dict) or not isinstance(out["config"], dict):
      raise self.unreadable(step, ValueError("its data or config entry is missing"))
    return out["state"], out["data"], out["config"]

  def restore_config(self, step: int) -> dict:
    """Only the config saved with ``step`` (cheap; no arrays are read).

    Raises:
      CheckpointError: the config file is missing or not JSON.
    """
    try:
      config = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    except Exception as e:  # pylint: disable=broad-except
      raise self.unreadable(step, e) from e
    if not isinstance(config, dict):
      raise self.unreadable(step, ValueError("its config entry is missing"))
    return config

  def unreadable(self, step: int, error: BaseException) -> CheckpointError:
    """The error for an unreadable ``step``, offering the newest other checkpoint."""
    older = [s for s in self.all_steps() if s < step]
    aside = os.path.join(os.path.dirname(self.directory), f"broken_checkpoint_{step}")
    move = f"mv {os.path.join(self.directory, str(step))} {aside}"
    if older:
      offer = (f"Checkpoint {older[-1]} is the newest one before it: move the broken one aside ({move}) "
               f"and run the same command again to resume from step {older[-1]}.")
    else:
      offer = f"No older checkpoint is saved: move it aside ({move}) to start afresh, or use another --workdir."
    return CheckpointError(
        f"checkpoint {step} in {self.directory} cannot be read ({type(error).__name__}: "
        f"{' '.join(str(error).split())[:300]}). "
        f"It is truncated or corrupt, or was written for another architecture. {offer}")

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def this_process() -> ocp.options.MultiprocessingOptions:
  """Orbax options for files that only this process reads or writes (no cross-process barrier)."""
  return ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                            active_processes={jax.process_index()})


def abstract_with_sharding(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """``jax.ShapeDtypeStruct`` leaves carrying ``sharding``: the restore target orbax needs."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
