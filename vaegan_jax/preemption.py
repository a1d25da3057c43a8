"""Preemption: SIGTERM or SIGINT asks the train loop to checkpoint and exit cleanly.

Cloud schedulers (GCE/GKE preemption, Slurm, Kubernetes) send SIGTERM and wait a grace
period before SIGKILL; Ctrl-C sends SIGINT. ``StopRequest`` turns the first such signal into
a stop that the train loop reads after each step (``reached(step)``, a host-side check with
no device sync), so the current step finishes, a checkpoint is written and waited for, and
the process exits 0. A second signal gets the default behaviour back (exit at once): the
last complete checkpoint is never at risk, because orbax only renames a step into place
once written.

With several processes (``jax.distributed``), a signal reaches one process and all must
stop after the same step, or the others would wait forever in the step's collectives.
That is what JAX's preemption service does: ``jax.distributed.initialize`` installs its
own SIGTERM handler, which tells the coordinator; the coordinator picks the first step that
no process has passed yet, and ``multihost_utils.reached_preemption_sync_point(step)``
turns True on every process at that step. So with the runtime started, SIGTERM is left to
JAX, and SIGINT (Ctrl-C) is passed on to it as a SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Catches SIGTERM and SIGINT while active (a context manager); ``reached(step)`` says when to stop.

  Only the main thread can install signal handlers; elsewhere (e.g. a notebook's worker
  thread) a single process does nothing and signals keep their usual effect.

  Attributes:
    requested: the name of the first signal received ("SIGTERM", "SIGINT"), or None; with
      several processes, set once every process has reached the agreed stop step.
  """

  def __init__(self):
    self.requested: str | None = None
    self._previous: dict[int, object] = {}
    self._shared = jax.distributed.is_initialized()

  def _handle(self, signum, frame) -> None:  # pylint: disable=unused-argument
    self.requested = signal.Signals(signum).name
    for sig, handler in self._previous.items():  # a second signal acts at once
      signal.signal(sig, handler)
    print(f"\n{self.requested} received: finishing this step and writing a checkpoint "
          "(send it again to stop at once; the last complete checkpoint is kept)", file=sys.stderr, flush=True)

  def _forward(self, signum, frame) -> None:  # pylint: disable=unused-argument
    print("\nSIGINT received: passed on to JAX's preemption service as SIGTERM; every process stops "
          "after the same step and writes a checkpoint", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, self._previous.pop(signal.SIGINT))
    signal.raise_signal(signal.SIGTERM)

  def reached(self, step: int) -> bool:
    """Call after every train step, with the step just completed: True when the loop must stop.

    With several processes this must be called at every step on every process, with the same
    steps (JAX's preemption sync protocol); it becomes True on all of them at the same step.
    """
    if self._shared and not self.requested and multihost_utils.reached_preemption_sync_point(step):
      self.requested = "SIGTERM"
    return self.requested is not None

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      if self._shared:  # SIGTERM stays with JAX's handler
        self._previous = {signal.SIGINT: signal.signal(signal.SIGINT, self._forward)}
      else:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
