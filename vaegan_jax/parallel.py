"""Data parallelism: ``jax.jit`` over a one-axis device mesh (no pmap).

The batch is sharded along mesh axis ``"data"``, the train state is replicated; XLA inserts
the gradient all-reduce, and BatchNorm statistics are computed over the global batch. The
same code runs on one CPU, one GPU, 8 GPUs and (with ``jax.distributed``) several hosts.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
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


# bf16 convolutions through oneDNN: jaxlib 0.12's XLA:CPU rewrites convolutions to oneDNN
# custom calls under these two options, and oneDNN runs bf16 ones on the AMX / AVX512-BF16 units
# (jaxlib 0.10.2 accepts the options but rewrites nothing). Measured on this 2-core Xeon
# (benchmarks/README.md, "bf16 on the CPU"): one bf16 5x5 stride-2 convolution's forward 403-412
# GFLOP/s against 141-145 without (PyTorch 396-428), the weight gradient 154-187 against 95-125;
# the 64x64 VAE/GAN step in bf16 9.1-9.2 images/s against 6.1-6.2. In f32 the same options make
# the step slower (5.1-5.8 images/s against 5.9-6.0), so they are only set for bf16 steps.
CPU_BF16_COMPILER_OPTIONS = {
    "xla_cpu_use_onednn": True,
    "xla_cpu_experimental_onednn_custom_call": True,
}

# The target-name prefix of XLA:CPU's oneDNN custom calls in a compiled program's text
# (``custom_call_target="__onednn$convolution"``, ``"__onednn$matmul"``, ...).
ONEDNN_CUSTOM_CALL_PREFIX = "__onednn$"


@functools.cache
def _cpu_options_accepted() -> bool:
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros(2)).compile(compiler_options=CPU_COMPILER_OPTIONS)
    return True
  except Exception as e:  # pylint: disable=broad-except  # jaxlib raises its own runtime error types
    logging.warning("this jaxlib does not take the CPU compiler options %s (%s); compiling with its defaults",
                    CPU_COMPILER_OPTIONS, str(e).splitlines()[0])
    return False


@functools.cache
def _onednn_takes_bf16_convolutions() -> bool:
  """Whether this jaxlib, under ``CPU_BF16_COMPILER_OPTIONS``, compiles a bf16 convolution to a
  oneDNN custom call (the probe reads the compiled program, so a jaxlib that accepts the
  options and ignores them, as 0.10.2 does, gets none of them)."""
  x = jnp.zeros((2, 8, 8, 4), jnp.bfloat16)
  w = jnp.zeros((3, 3, 4, 8), jnp.bfloat16)
  conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
  try:
    text = jax.jit(conv).lower(x, w).compile(
        compiler_options={**CPU_COMPILER_OPTIONS, **CPU_BF16_COMPILER_OPTIONS}).as_text()
  except Exception:  # pylint: disable=broad-except  # an option this jaxlib does not know
    return False
  return ONEDNN_CUSTOM_CALL_PREFIX + "convolution" in text


def compiler_options(mesh: Mesh, dtype: str = "float32") -> dict[str, Any]:
  """The XLA options a step of compute ``dtype`` ("float32" or "bfloat16", ``config.model.dtype``)
  is compiled with: ``CPU_COMPILER_OPTIONS`` on a CPU mesh whose jaxlib accepts them, plus
  ``CPU_BF16_COMPILER_OPTIONS`` for bf16 where this jaxlib's oneDNN takes bf16 convolutions;
  none on any other backend (GPU and TPU never see a CPU flag)."""
  if mesh.devices.flat[0].platform != "cpu" or not _cpu_options_accepted():
    return {}
  options = dict(CPU_COMPILER_OPTIONS)
  if dtype == "bfloat16" and _onednn_takes_bf16_convolutions():
    options.update(CPU_BF16_COMPILER_OPTIONS)
  return options


def compute_dtype(dtype: str, mesh: Mesh) -> str:
  """The compute dtype of ``config.model.dtype`` on ``mesh``: "float32" or "bfloat16".

  "auto" is bfloat16 on a CPU mesh whose jaxlib hands bf16 convolutions to oneDNN
  (``CPU_BF16_COMPILER_OPTIONS``: jaxlib 0.12; the 64x64 VAE/GAN step 1.5x to 1.8x the f32
  step, and 300 steps trained alike, benchmarks/README.md "bf16 on the CPU"), and float32
  elsewhere: CPUs of an older jaxlib (0.10.2, where bf16 is no faster), GPUs and TPUs (where
  the reference runs are f32). Any other value is returned as it is.
  """
  if dtype != "auto":
    return dtype
  on_cpu = mesh.devices.flat[0].platform == "cpu"
  return "bfloat16" if on_cpu and _cpu_options_accepted() and _onednn_takes_bf16_convolutions() else "float32"


def jit_train_step(train_step: Callable, mesh: Mesh, dtype: str = "float32") -> Callable:
  """``jax.jit`` of ``(state, batch) -> (state, metrics)``: state replicated and donated, with
  ``compiler_options(mesh, dtype)`` (``dtype``: the step's compute dtype, ``config.model.dtype``)."""
  return jax.jit(train_step, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0,
                 compiler_options=compiler_options(mesh, dtype))


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

