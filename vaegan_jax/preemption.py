"""Preemption: SIGTERM or SIGINT asks the train loop to checkpoint and exit cleanly.

Cloud schedulers (GCE/GKE preemption, Slurm, Kubernetes) send SIGTERM and wait a grace
period before SIGKILL; Ctrl-C sends SIGINT. ``StopRequest`` turns the first such signal into
a flag that the train loop reads between steps (a Python bool: no device sync), so the
current step finishes, a checkpoint is written and waited for, and the process exits 0.
A second signal gets the default behaviour back (exit at once): the last complete
checkpoint is never at risk, because orbax only renames a step into place once written.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Catches SIGTERM and SIGINT while active (a context manager); ``requested`` says one came.

  Only the main thread can install signal handlers; elsewhere (e.g. a notebook's worker
  thread) this does nothing and signals keep their usual effect.

  Attributes:
    requested: the name of the first signal received ("SIGTERM", "SIGINT"), or None.
  """

  def __init__(self):
    self.requested: str | None = None
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame) -> None:  # pylint: disable=unused-argument
    self.requested = signal.Signals(signum).name
    for sig, handler in self._previous.items():  # a second signal acts at once
      signal.signal(sig, handler)
    print(f"\n{self.requested} received: finishing this step and writing a checkpoint "
          "(send it again to stop at once; the last complete checkpoint is kept)", file=sys.stderr, flush=True)

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
