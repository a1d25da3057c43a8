"""Data parallelism: ``jax.jit`` over a one-axis device mesh (no pmap).

The batch is sharded along mesh axis ``"data"``, the train state is replicated; XLA inserts
the gradient all-reduce, and BatchNorm statistics are computed over the global batch. The
same code runs on one CPU, one GPU, 8 GPUs and (with ``jax.distributed``) several hosts.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named ``"data"`` over ``devices`` (default: every device of every process).

  Devices are ordered by process, then id, so that each process's devices hold one
  contiguous block of the batch axis: process p's rows ``distributed.process_rows``.
  """
  devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def check_batch_size(global_batch: int, mesh: Mesh, group_size: int = 1) -> None:
  """Raises ValueError unless ``global_batch`` splits evenly over the mesh's devices.

  Args:
    global_batch: ``config.train.batch_size``.
    mesh: the data mesh.
    group_size: images that must stay on one device (ML-VAE's groups); the batch's leading,
      sharded axis then holds ``global_batch / group_size`` groups.
  """
  n = mesh.devices.size
  rows, unit = global_batch // group_size, n * group_size
  if global_batch % group_size or rows % n:
    what = f"global batch size {global_batch}" + (f" ({global_batch / group_size:g} groups of {group_size})"
                                                  if group_size > 1 else "")
    raise ValueError(
        f"{what} is not divisible by the {n} devices of the mesh; "
        f"set --config.train.batch_size to a multiple of {unit} (e.g. {max(unit, global_batch // unit * unit)})")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's rows of the global batch -> global arrays sharded on ``"data"``.

  Each process passes its own block (``distributed.process_rows``), of shape
  ``[global_batch / process_count, ...]``; the global array has the full batch.
  """
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


# XLA:CPU (jaxlib 0.10) hands convolutions, matmuls and reductions to YNNPACK by default; its
# convolutions are 1.3x to 4x slower than XLA's own (Eigen) ones here, above all the weight
# gradients (one 3x3 weight gradient: 1130 ms against 299 ms). Keep matmuls and reductions in
# YNNPACK and let XLA compute the convolutions. Measured in benchmarks/README.md.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


@functools.cache
def _cpu_options_accepted() -> bool:
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros(2)).compile(compiler_options=CPU_COMPILER_OPTIONS)
    return True
  except Exception as e:  # pylint: disable=broad-except  # jaxlib raises its own runtime error types
    logging.warning("this jaxlib does not take the CPU compiler options %s (%s); compiling with its defaults",
                    CPU_COMPILER_OPTIONS, str(e).splitlines()[0])
    return False


def compiler_options(mesh: Mesh) -> dict[str, str]:
  """The XLA options the train step is compiled with: ``CPU_COMPILER_OPTIONS`` on a CPU mesh
  whose jaxlib accepts them, none on any other backend (GPU and TPU never see a CPU flag)."""
  if mesh.devices.flat[0].platform != "cpu" or not _cpu_options_accepted():
    return {}
  return dict(CPU_COMPILER_OPTIONS)


def jit_train_step(train_step: Callable, mesh: Mesh) -> Callable:
  """``jax.jit`` of ``(state, batch) -> (state, metrics)``: state replicated and donated, with
  ``compiler_options(mesh)``."""
  return jax.jit(train_step, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0,
                 compiler_options=compiler_options(mesh))


def batched(fn: Callable, arrays: np.ndarray, batch_size: int) -> np.ndarray:
  """Applies a jitted ``fn`` to ``arrays`` in chunks of ``batch_size`` along the first axis and
  concatenates the host results (NumPy, ``fn``'s dtype). Evaluation and ``vaegan_jax.load``
  use it, so that any number of images fits the device. Zero rows give zero rows (of the
  shape and dtype ``fn`` would return)."""
  if not len(arrays):
    out = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, *np.shape(arrays)[1:]), np.asarray(arrays).dtype))
    return np.zeros((0, *out.shape[1:]), out.dtype)
  return np.concatenate([np.asarray(jax.device_get(fn(arrays[i:i + batch_size])))
                         for i in range(0, len(arrays), batch_size)])

