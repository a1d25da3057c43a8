"""One run, several processes: starting JAX's distributed runtime for train.py and eval.py.

``jax.distributed.initialize`` connects the processes of a job (one per host, or one per
GPU) through a coordinator on process 0; afterwards ``jax.devices()`` lists every device of
every process, and the data mesh (``parallel.make_mesh``) spans them all, so the jitted
train step is unchanged. JAX discovers its peers itself on TPU pods, under Slurm (``srun``)
and Open MPI (``mpirun``); elsewhere the coordinator address, process count and process id
come from flags or environment variables. A single process starts nothing.

What differs between processes, and only that (README "Running on a TPU pod / several GPU
hosts"): each reads its own contiguous block of every global batch (``process_rows``);
process 0 alone holds the workdir lock and writes logs, metrics and images; orbax writes
and reads checkpoints from every process; a preemption notice (SIGTERM) to any process
stops all of them after the same step (``preemption.StopRequest``).
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, TypeVar

import jax
import jaxlib
from absl import flags, logging

T = TypeVar("T")

# Environment variables read when the flags are not given (JAX itself reads the first).
ENV_ADDRESS, ENV_COUNT, ENV_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def define_flags() -> None:
  """Adds ``--distributed``, ``--coordinator_address``, ``--num_processes``, ``--process_id``."""
  flags.DEFINE_bool("distributed", False, "Start JAX's distributed runtime and let it discover its peers "
                    "(TPU pods, Slurm, Open MPI, Kubernetes). Implied by any of the three flags below, by "
                    "a Slurm/Open MPI job of more than one task, or by $TPU_WORKER_HOSTNAMES listing "
                    "several hosts.")
  flags.DEFINE_string("coordinator_address", None, f"host:port of process 0's coordinator (default: ${ENV_ADDRESS}).")
  flags.DEFINE_integer("num_processes", None, f"Processes in the job (default: ${ENV_COUNT}).", lower_bound=1)
  flags.DEFINE_integer("process_id", None, f"This process's id, 0 to num_processes - 1 (default: ${ENV_ID}).",
                       lower_bound=0)


def _env_int(env, name: str) -> int | None:
  value = env.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"${name}={value!r} is not an integer: set it to a whole number or unset it") from None


def settings(distributed: bool = False, coordinator_address: str | None = None, num_processes: int | None = None,
             process_id: int | None = None, env=None) -> dict | None:
  """The keyword arguments for ``jax.distributed.initialize``, or None for a single process.

  Args:
    distributed: start the runtime even with nothing below set (JAX then discovers the rest).
    coordinator_address: ``host:port`` of process 0; default ``$JAX_COORDINATOR_ADDRESS``.
    num_processes: processes in the job; default ``$JAX_NUM_PROCESSES``.
    process_id: this process, in ``[0, num_processes)``; default ``$JAX_PROCESS_ID``.
    env: the environment (default ``os.environ``).

  Returns:
    None when nothing asks for several processes (no flag, no variable, not a Slurm or Open
    MPI job of more than one task, no ``$TPU_WORKER_HOSTNAMES`` listing several hosts); else
    the values given (possibly ``{}``), the missing ones left to JAX's cluster detection.

  Raises:
    ValueError: a variable is not an integer, or ``process_id`` is outside ``[0, num_processes)``.
  """
  env = os.environ if env is None else env
  given = {"coordinator_address": coordinator_address or env.get(ENV_ADDRESS) or None,
           "num_processes": num_processes if num_processes is not None else _env_int(env, ENV_COUNT),
           "process_id": process_id if process_id is not None else _env_int(env, ENV_ID)}
  given = {k: v for k, v in given.items() if v is not None}
  n, i = given.get("num_processes"), given.get("process_id")
  if n is not None and i is not None and not 0 <= i < n:
    raise ValueError(f"process id {i} is not in [0, {n}): give each of the {n} processes its own "
                     f"--process_id from 0 to {n - 1}")
  cluster = (any((_env_int(env, name) or 1) > 1 for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
             or "," in env.get("TPU_WORKER_HOSTNAMES", ""))   # a TPU slice of several hosts (GKE sets it)
  return given if (given or distributed or cluster) else None


def initialize(**kwargs) -> bool:
  """Starts ``jax.distributed`` if ``settings(**kwargs)`` asks for it; True if it did.

  Must run before anything touches a JAX device. Waits (up to 5 minutes) for every process
  to connect to the coordinator. Turns the persistent compilation cache off, with a warning,
  where ``cache_deadlocks`` says a cached executable hangs (multi-process CPU, jaxlib 0.12.1).

  Raises:
    ValueError: as ``settings``; also JAX's own errors for missing values it cannot discover.
  """
  chosen = settings(**kwargs)
  if chosen is None:
    return False
  jax.distributed.initialize(**chosen)
  _avoid_cache_deadlock()
  return True


# The first jaxlib seen to deadlock (docs/distributed.md "Compilation cache"): 0.10.2, 0.11.2 and
# 0.12.0 run the reproduction there; 0.12.1, the newest release on 2026-12-07, hangs. No release
# is known to fix it, so the check stays open-ended until one is tested.
CACHE_DEADLOCK_JAXLIB = (0, 12, 1)


def _version(text: str) -> tuple[int, ...]:
  parts = []
  for part in text.split(".")[:3]:
    digits = "".join(itertools.takewhile(str.isdigit, part))
    parts.append(int(digits or 0))
  return tuple(parts)


def cache_deadlocks(platform: str, processes: int, jaxlib_version: str) -> bool:
  """True where an executable loaded from JAX's persistent compilation cache deadlocks.

  On jaxlib 0.12.1 (and, until a fixed release is tested, later ones) a multi-process CPU
  executable that a process loads from the cache never finishes its first collective
  (gloo): every process waits forever in ``jax.device_get`` of the result. Compiled fresh,
  the same executable runs. Seen with train.py's resume after a preemption, and with the
  12-line reproduction in docs/distributed.md; to be reported to jax-ml/jax.

  Args:
    platform: ``jax.default_backend()``: "cpu", "gpu", "tpu".
    processes: ``jax.process_count()``.
    jaxlib_version: ``jaxlib.__version__``, e.g. "0.12.1" or "0.12.0.1".
  """
  return platform == "cpu" and processes > 1 and _version(jaxlib_version) >= CACHE_DEADLOCK_JAXLIB


def _avoid_cache_deadlock() -> None:
  """Turns the persistent compilation cache off where ``cache_deadlocks`` says it hangs."""
  if not jax.config.jax_enable_compilation_cache or not jax.config.jax_compilation_cache_dir:
    return
  if cache_deadlocks(jax.default_backend(), jax.process_count(), jaxlib.__version__):
    jax.config.update("jax_enable_compilation_cache", False)
    logging.warning("persistent compilation cache (%s) turned off: on jaxlib %s a multi-process CPU run "
                    "deadlocks in an executable loaded from it (docs/distributed.md, 'Compilation cache'); "
                    "every process compiles afresh instead", jax.config.jax_compilation_cache_dir,
                    jaxlib.__version__)


def initialize_from_flags(program: str) -> bool:
  """``initialize`` with the flags of ``define_flags`` (after absl parsed them); True if started.

  Raises:
    SystemExit: "<program>: error: cannot start JAX's distributed runtime: <why>".
  """
  f = flags.FLAGS
  try:
    return initialize(distributed=f.distributed, coordinator_address=f.coordinator_address,
                      num_processes=f.num_processes, process_id=f.process_id)
  except (ValueError, TypeError, RuntimeError) as e:
    raise SystemExit(f"{program}: error: cannot start JAX's distributed runtime: {e}") from None


def is_primary() -> bool:
  """True on process 0, the one that writes logs, metrics and images (and on a single process)."""
  return jax.process_index() == 0


def process_rows(global_batch: int) -> tuple[int, int]:
  """This process's rows of every global batch: ``(first, count)``.

  Process p reads rows ``[p * b, (p + 1) * b)`` with ``b = global_batch / process_count``:
  the block that ``jax.make_array_from_process_local_data`` places on p's devices of the
  mesh (``parallel.make_mesh`` orders devices by process). So P processes together feed the
  train step exactly the global batch, in the same order, that one process would.

  Raises:
    ValueError: ``global_batch`` does not split evenly over the processes.
  """
  processes = jax.process_count()
  if global_batch % processes:
    raise ValueError(f"global batch size {global_batch} does not split over {processes} processes: set "
                     f"--config.train.batch_size to a multiple of {processes}")
  count = global_batch // processes
  return jax.process_index() * count, count


# How long the other processes wait for process 0 (preparing a large dataset, an evaluation).
WAIT_FOR_PRIMARY_S = 6 * 3600
_messages = itertools.count()


def _client():
  # JAX offers no public handle on its coordination-service client; orbax reads it the same way.
  client = jax._src.distributed.global_state.client  # pylint: disable=protected-access
  if client is None:
    raise RuntimeError(f"this is process {jax.process_index()} of {jax.process_count()}, but JAX's distributed "
                       "runtime was not started: pass --distributed (or --coordinator_address, --num_processes "
                       "and --process_id) to every process")
  return client


def primary_says(text: str) -> str:
  """Process 0's ``text`` on every process; all must call this in the same order.

  Passed through the coordination service's key-value store, not a device collective:
  the others may wait for process 0 for hours (``WAIT_FOR_PRIMARY_S``), where a collective
  on CPU (gloo) gives up after 30 seconds. Process 0 does not wait.
  """
  if jax.process_count() == 1:
    return text
  key = f"vaegan_jax/primary_says/{next(_messages)}"
  if is_primary():
    _client().key_value_set(key, text)
    return text
  return _client().blocking_key_value_get(key, WAIT_FOR_PRIMARY_S * 1000)


def barrier(name: str, timeout_s: float = 3600.0) -> None:
  """Returns once every process has called ``barrier(name)``; all must call it in the same order.

  A coordination-service barrier, not a device collective, so it may wait for as long as
  ``timeout_s`` (a collective on CPU, gloo, gives up after 30 seconds).

  Raises:
    RuntimeError: JAX's distributed runtime is not started on a multi-process run; or (from
      JAX) a process failed or ``timeout_s`` passed before all arrived.
  """
  if jax.process_count() == 1:
    return
  _client().wait_at_barrier(f"vaegan_jax/barrier/{name}/{next(_messages)}", int(timeout_s * 1000))


def primary_value(value: int) -> int:
  """Process 0's integer ``value`` on every process (``primary_says``).

  For decisions taken from shared files that another process may change at any moment, such
  as whether the checkpoint folder exists yet: every process then takes the same path.
  """
  return int(primary_says(str(int(value))))


class PeerError(RuntimeError):
  """Process 0 failed in a step that every process waits on; its own output says why."""


def primary_first(fn: Callable[[], T], name: str) -> T:
  """Runs ``fn`` on process 0, then on the others once it has succeeded.

  For steps that write shared files or check shared state, such as preparing a tfds dataset
  or probing the workdir's lock: the other processes then find the files ready on a shared
  disk (or make their own copy on a local one). Process 0's outcome is broadcast, so that
  when it fails every process stops at once instead of waiting in a collective.

  Raises:
    whatever ``fn`` raises (on process 0, or on another process after process 0 succeeded);
    PeerError: on the other processes, when ``fn`` failed on process 0.
  """
  if jax.process_count() == 1:
    return fn()
  out, error = None, None
  if is_primary():
    try:
      out = fn()
    except Exception as e:  # pylint: disable=broad-except  # re-raised below, after telling the others
      error = e
  failure = primary_says("" if error is None else f"{type(error).__name__}: {error}")
  if error is not None:
    raise error
  if failure:
    raise PeerError(f"process 0 failed in {name}, so process {jax.process_index()} stops too. Its error: {failure}")
  return out if is_primary() else fn()
