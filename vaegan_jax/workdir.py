"""One workdir, one writer: an exclusive lock that a second ``train.py`` cannot take.

The lock is ``flock(2)`` on ``<workdir>/train.lock``, which the kernel releases when the
holding process exits in any way (SIGKILL and power loss included), so a crash never leaves
a stale lock behind and no "break the lock" step exists. The file records its holder (pid,
host, start time) for the refusal message. ``filelock`` was the library candidate, but it
truncates the file when it opens it (so a refused process would erase the holder's record)
and has no read-only probe; the 40 lines below do both.

Local and NFS workdirs only: ``flock`` is not available on object stores (gs://), where a
run's single writer must be ensured by the scheduler.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

LOCK_FILE = "train.lock"


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir's lock; the message names it and the way out."""


def _busy(workdir: str, path: str) -> WorkdirBusyError:
  try:
    with open(path, encoding="utf-8") as f:
      owner = json.load(f)
    who = f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
    stop = f" (kill -TERM {owner['pid']} makes it checkpoint and exit)"
  except (OSError, ValueError, KeyError):
    who, stop = "a process that has not yet written its name", ""
  return WorkdirBusyError(
      f"{workdir} is in use by another train.py ({who}). Two writers would interleave checkpoints: "
      f"wait for it to finish or stop it{stop}, or pass another --workdir.")


def check_free(workdir: str) -> None:
  """Raises WorkdirBusyError if a live process holds ``workdir``'s lock; writes nothing.

  Raises:
    WorkdirBusyError: the lock is held.
  """
  path = os.path.join(workdir, LOCK_FILE)
  try:
    fd = os.open(path, os.O_RDONLY)
  except FileNotFoundError:
    return
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    raise _busy(workdir, path) from None
  finally:
    os.close(fd)  # closing releases a lock taken here


class WorkdirLock:
  """Holds ``<workdir>/train.lock`` exclusively from ``acquire()`` until ``release()`` or exit.

  Args:
    workdir: the run folder (created by ``acquire`` if missing).
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None

  def acquire(self) -> None:
    """Takes the lock and records this process as its holder.

    Raises:
      WorkdirBusyError: another process holds it (nothing is written then).
    """
    os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise _busy(self.workdir, self.path) from None
    except OSError as e:  # ENOSYS / EOPNOTSUPP: a filesystem without flock
      os.close(fd)
      raise WorkdirBusyError(f"{self.workdir} is on a filesystem without file locks ({e}); "
                             "use a workdir on a local or NFS disk") from e
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(owner).encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
