"""The train loop: ``train_and_evaluate(config, workdir)``.

Resumes from the newest checkpoint in ``workdir`` if there is one (state, optimizer states,
non-finite counters, random key, data position), so killing a run and starting the same
command again continues it exactly. Metrics leave the device every ``train.log_every``
steps and at checkpoints only (no per-step host sync).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
import types

import jax
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from vaegan_jax import config as config_lib
from vaegan_jax import data, distributed, images, parallel, preemption
from vaegan_jax import workdir as workdir_lib
from vaegan_jax.checkpoint import Checkpointer, CheckpointError, abstract_with_sharding
from vaegan_jax.workdir import WorkdirBusyError
from vaegan_jax import methods
from vaegan_jax.methods.common import TrainState, all_finite
from vaegan_jax.metric_writers import MetricWriter

# Config sections that define what a checkpoint *is*; a resume with other values is refused.
_IDENTITY_KEYS = ("method", "data.name", "model")
# ...but for the compute dtype: parameters and optimizer states are float32 in either, so a run
# may go on in another ("auto" resolves per machine: bf16 where this jaxlib runs it faster).
_NOT_IDENTITY_KEYS = ("model.dtype",)


@dataclasses.dataclass
class Run:
  """Everything built from a config before any array is allocated."""

  config: ml_collections.ConfigDict
  method: types.ModuleType
  info: data.DatasetInfo
  mesh: jax.sharding.Mesh
  models: dict
  optimizers: dict[str, optax.GradientTransformation]
  schedules: dict[str, optax.Schedule]
  steps_per_epoch: int

  def init_state(self) -> TrainState:
    """A fresh, replicated train state from ``config.seed``."""
    create = functools.partial(self.method.create_train_state, config=self.config, models=self.models,
                               optimizers=self.optimizers)
    return jax.jit(create, out_shardings=parallel.replicated(self.mesh))(jax.random.key(self.config.seed))

  def abstract_state(self):
    create = functools.partial(self.method.create_train_state, config=self.config, models=self.models,
                               optimizers=self.optimizers)
    shapes = jax.eval_shape(create, jax.random.key(self.config.seed))
    return abstract_with_sharding(shapes, parallel.replicated(self.mesh))


DATASET_FILE = "dataset.json"   # in a workdir: what the dataset told the run (restore.py reads it without the data)


def setup(config: ml_collections.ConfigDict, devices=None, info: data.DatasetInfo | None = None) -> Run:
  """Validates the config, prepares the data and builds networks, optimizers and the mesh.

  Every check of the input happens here, before any array is allocated or file written.
  With ``info`` (a run's saved ``dataset.json``, or a model folder's) the dataset is neither
  read nor prepared: the run can restore and use its networks, not train or evaluate.
  ``model.dtype="auto"`` is resolved here (``parallel.compute_dtype``): ``Run.config`` is a
  copy holding "float32" or "bfloat16", and that is what checkpoints save.

  Raises:
    ValueError: a bad config value, a batch that does not split over the devices or is
      larger than the train split, or networks that cannot take the dataset's images.
    FileNotFoundError, data.DataError: missing or corrupt dataset files.
  """
  config_lib.validate(config)
  info = data.dataset_info(config) if info is None else info
  mesh = parallel.make_mesh(devices)
  if config.model.dtype == "auto":
    config = config.copy_and_resolve_references()
    config.model.dtype = parallel.compute_dtype("auto", mesh)
  method = methods.get(config.method)
  group_size = method.batch_group_size(config) if hasattr(method, "batch_group_size") else 1
  parallel.check_batch_size(config.train.batch_size, mesh, group_size)
  if config.train.batch_size > info.num_train:
    raise ValueError(f"config.train.batch_size={config.train.batch_size} exceeds the {info.num_train} training "
                     f"examples of {config.data.name}: set --config.train.batch_size to at most {info.num_train}")
  steps_per_epoch = max(1, info.num_train // config.train.batch_size)
  models = method.build_models(config, info.image_shape)
  optimizers = method.make_optimizers(config, steps_per_epoch)  # keyed by their config.optim section
  schedules = {name: method.learning_rate_schedule(config.optim[name], steps_per_epoch, config.train.batch_size,
                                                   config.train.num_steps)
               for name in optimizers}
  return Run(config, method, info, mesh, models, optimizers, schedules, steps_per_epoch)


# What train.py reports as "error: <message>" (each names the problem and its fix) rather
# than as a traceback; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ValueError, FileNotFoundError, data.DataError, WorkdirBusyError, CheckpointError,
                   FloatingPointError, distributed.PeerError)


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out


def check_same_run(saved: dict, config: ml_collections.ConfigDict, where: str) -> None:
  """Raises ValueError if ``saved`` (a checkpoint's config) is another model or dataset."""
  current = _flatten(config_lib.to_json(config))
  saved = _flatten(saved)
  diffs = [f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}"
           for k in sorted(set(current) | set(saved))
           if any(k == p or k.startswith(p + ".") for p in _IDENTITY_KEYS) and k not in _NOT_IDENTITY_KEYS
           and saved.get(k) != current.get(k)]
  if diffs:
    raise ValueError(f"{where} holds a run of another model or dataset ({'; '.join(diffs[:5])}). "
                     "Use a new --workdir, or the config that run was started with.")


@jax.jit
def _all_finite(tree) -> jax.Array:
  """bool[]: every leaf of ``tree`` is finite (one device reduction, one host read)."""
  return all_finite(tree)


class DivergedError(FloatingPointError):
  """``train.max_consecutive_nonfinite`` steps in a row had a NaN or infinite loss or gradient."""


def _read_checkpoint(run: Run, checkpointer: Checkpointer, step: int, workdir: str):
  """Restores ``step`` after checking it is this config's model; ``(state, data_state)``."""
  check_same_run(checkpointer.restore_config(step), run.config, workdir)
  state, data_state, _ = checkpointer.restore(step, run.abstract_state())
  if not bool(_all_finite(state.params)):
    raise checkpointer.unreadable(step, FloatingPointError("its parameters are not finite"))
  return state, data_state


def _kept(checkpointer: Checkpointer) -> str:
  latest = checkpointer.latest_step()
  return "No checkpoint was saved yet." if latest is None else f"Checkpoint {latest} (the last good one) is kept."


def _check_health(pending: list[tuple[int, dict]], limit: int, checkpointer: Checkpointer) -> list[dict]:
  """Fetches the window's metrics (the loop's only host sync) and raises on divergence.

  Raises:
    DivergedError: some step of the window ended ``limit`` or more non-finite steps in a row.
  """
  host = jax.device_get([m for _, m in pending])
  for (step, _), m in zip(pending, host):
    if m["train/nonfinite_streak"] >= limit:
      raise DivergedError(
          f"{limit} steps in a row ({step - limit + 1} to {step}) had a NaN or infinite loss or gradient; "
          f"their updates were skipped and the run stops at step {step}. {_kept(checkpointer)} Look at the data "
          "of those steps, lower the learning rates or loss.gamma, or raise "
          "--config.train.max_consecutive_nonfinite; then run the same command again to resume.")
  return host


def _window_means(host: list[dict]) -> dict[str, float]:
  """Means of a log window over its finite steps, plus the non-finite counters after it."""
  good = [m for m in host if m["train/nonfinite"] == 0]
  means = {k: float(np.mean([m[k] for m in good])) for k in host[0] if not k.startswith("train/nonfinite")} if good else {}
  means["train/nonfinite_steps"] = float(host[-1]["train/nonfinite_steps"])
  means["train/nonfinite_streak"] = float(host[-1]["train/nonfinite_streak"])
  return means


class _ImageLogger:
  """Writes reconstruction and prior-sample grids of fixed test images and fixed z.

  Process 0 only: it computes on its own replica of the state (one local device), so the
  other processes take no part.
  """

  def __init__(self, run: Run, workdir: str, writer: MetricWriter):
    rows = run.config.train.num_image_rows
    self.columns, self.dir, self.writer = rows, os.path.join(workdir, "images"), writer
    self.has_encoder = "encoder" in run.models
    self.test_images = data.eval_images(run.config, rows * rows // 2)["image"]
    key = jax.random.key(run.config.seed + 1)
    prior_sample = getattr(run.method, "prior_sample", None)
    self.z = (prior_sample(run.config, key, rows * rows) if prior_sample
              else jax.random.normal(key, (rows * rows, run.config.model.latent_dim)))
    self._reconstruct = jax.jit(functools.partial(run.method.reconstruct, run.models))
    self._sample = jax.jit(functools.partial(run.method.sample, run.models))

  def __call__(self, step: int, state) -> None:
    state = jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, state)
    grids = {"samples": images.make_grid(images.to_uint8(self._sample(state, self.z)), self.columns)}
    if self.has_encoder:
      recon = images.to_uint8(self._reconstruct(state, self.test_images))
      grids["reconstructions"] = images.make_grid(
          images.interleave_rows(self.test_images, recon, self.columns), self.columns)
    for name, grid in grids.items():
      images.save_png(os.path.join(self.dir, f"{name}_{step:07d}.png"), grid)
      self.writer.write_image(step, name, grid)


def _resume_point(run: Run, workdir: str):
  """Read-only, before the workdir lock: the newest checkpoint's step, state and data position.

  Returns:
    (step, state, data_state), all None for a new run.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not distributed.primary_value(os.path.isdir(directory)):  # every process decides alike
    return None, None, None
  reader = Checkpointer(directory, create=False)
  try:
    latest = reader.latest_step()
    if latest is None:
      return None, None, None
    return (latest, *_read_checkpoint(run, reader, latest, workdir))
  finally:
    reader.close()


def _write_dataset_info(workdir: str, info: data.DatasetInfo) -> None:
  """``workdir/dataset.json`` (replaced whole, never half-written): lets ``vaegan_jax.load``
  rebuild the networks where the dataset is missing."""
  path = os.path.join(workdir, DATASET_FILE)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(data.info_to_json(info), f, indent=1)
  os.replace(tmp, path)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None) -> TrainState:
  """Trains ``config`` in ``workdir``, resuming from its newest checkpoint.

  Leaves ``workdir/checkpoints/<step>``, ``metrics.jsonl``, ``tensorboard/``,
  ``images/{reconstructions,samples}_<step>.png`` and ``train.lock``.

  Reliability (README "Reliability"):

  * Every check of the input (config values, dataset files, image shape, batch split, the
    workdir's lock, the saved run's model and the readability of its newest checkpoint) runs
    before anything is computed or written.
  * SIGTERM or SIGINT finish the current step, save a checkpoint, wait for it and return;
    running the same command again resumes exactly (same batches, keys and updates).
  * A step with a NaN or infinite loss or gradient is skipped and counted on the device;
    the loop reads the counters once per ``train.log_every`` steps and at each checkpoint.

  With several processes (``jax.distributed``; README "Running on a TPU pod / several GPU
  hosts") every process calls this with the same arguments: each reads its own rows of
  every batch, all write and read the checkpoints through orbax, process 0 alone holds the
  lock and writes metrics, TensorBoard events, images and the progress bar, and a SIGTERM
  to any process stops all of them after the same step.

  Args:
    config: a config from ``configs/*.py``.
    workdir: the run's folder (created if missing).
    devices: devices of the data mesh (default: all devices of all processes).

  Returns:
    The final train state (or the state at the step where a signal stopped the run).

  Raises:
    ValueError: bad config, a batch that does not split over the devices, networks that
      cannot take the dataset's images, or a workdir holding another model's run.
    FileNotFoundError, vaegan_jax.data.DataError: missing, corrupt or unreadable dataset files.
    WorkdirBusyError: another process is training in ``workdir``.
    CheckpointError: the newest checkpoint cannot be read (the message offers the previous one).
    DivergedError: ``train.max_consecutive_nonfinite`` non-finite steps in a row (the last good
      checkpoint is kept).
    distributed.PeerError: (several processes) process 0 failed to set up; its output says why.
  """
  def check() -> Run:  # process 0 first: it prepares the dataset files and probes the lock it will hold
    run = setup(config, devices)
    if distributed.is_primary():
      workdir_lib.check_free(workdir)
    return run

  run = distributed.primary_first(check, "setting up the run")
  config = run.config   # model.dtype "auto" resolved
  primary = distributed.is_primary()
  latest, state, data_state = _resume_point(run, workdir)
  tc = config.train
  lock = workdir_lib.WorkdirLock(workdir) if primary else contextlib.nullcontext()
  with lock, preemption.StopRequest() as stop:
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.max_to_keep)
    writer = None
    try:
      if checkpointer.latest_step() != latest:  # a run finished between the check and the lock
        latest = checkpointer.latest_step()
        state, data_state = _read_checkpoint(run, checkpointer, latest, workdir)
      if latest is None:
        state = run.init_state()
      elif primary:
        print(f"resuming from step {latest} in {workdir}", flush=True)
      start = int(state.step)
      batches = data.train_iterator(config, tc.batch_size, seed=config.seed, state=data_state,
                                    dataset=run.method.train_dataset)
      train_step = _compiled_together(parallel.jit_train_step(
          run.method.make_train_step(config, run.models, run.optimizers, run.schedules), run.mesh, config.model.dtype),
          state, batches, run.mesh)
      if primary:
        _write_dataset_info(workdir, run.info)
        writer = MetricWriter(workdir, resume_step=start)  # drops what a killed run logged after `start`
      log_images = _ImageLogger(run, workdir, writer) if primary else None
      config_json = config_lib.to_json(config)
      state = _loop(run, state, start, batches, train_step, checkpointer, writer, log_images, config_json, stop)
    finally:  # an in-flight asynchronous save completes even when the loop raises
      checkpointer.close()
      if writer is not None:
        writer.close()
  if stop.requested:  # every process says so: with several, they all stop after the same step
    saved = checkpointer.latest_step()
    who = f"process {jax.process_index()}/{jax.process_count()}: " if jax.process_count() > 1 else ""
    print(f"{who}stopped by {stop.requested} after step {int(state.step)}; "
          + (f"checkpoint {saved} is saved in {checkpointer.directory}" if saved is not None else "no step to save")
          + ". Run the same command again to resume.", flush=True)
  return state


def _compiled_together(train_step, state, batches, mesh):
  """``train_step`` compiled ahead of time; with several processes, they then meet at a barrier.

  The step's first collective follows its compilation at once, and on CPU (gloo) a process
  that waits in a collective for more than 30 s gives up. Compile times differ between
  processes (a loaded host took over 30 s longer), so each compiles first, with the first
  batch's shapes (read and put back: the iterator's position is unchanged), and all start
  stepping together. One process returns the jitted ``train_step`` as it is.
  """
  if jax.process_count() == 1:
    return train_step
  position = batches.get_state()
  example = parallel.shard_batch(next(batches), mesh)
  batches.set_state(position)
  compiled = train_step.lower(state, example).compile()
  distributed.barrier("train_step_compiled")
  return compiled


def _loop(run: Run, state, start: int, batches, train_step, checkpointer: Checkpointer, writer: MetricWriter | None,
          log_images: "_ImageLogger | None", config_json: dict, stop: preemption.StopRequest):
  """Steps ``start + 1`` to ``train.num_steps``; ``writer`` and ``log_images`` are None except on process 0."""
  config, tc = run.config, run.config.train
  pending: list[tuple[int, dict]] = []
  last_time, last_step, saved = time.perf_counter(), start, start

  def log(step: int) -> None:
    nonlocal pending, last_time, last_step
    means = _window_means(_check_health(pending, tc.max_consecutive_nonfinite, checkpointer))
    now = time.perf_counter()
    means["train/images_per_second"] = (step - last_step) * tc.batch_size / (now - last_time)
    means["train/epoch"] = step / run.steps_per_epoch
    last_time, last_step, pending = now, step, []
    if writer is None:
      return
    writer.write_scalars(step, means)
    bar.set_postfix({"img/s": f"{means['train/images_per_second']:.1f}",
                     **{k.split("/")[1]: f"{v:.3g}" for k, v in means.items()
                        if k.split("/")[1] in ("loss_encoder", "loss_decoder", "loss_discriminator")}})

  def save(step: int) -> None:
    nonlocal saved
    _check_health(pending, tc.max_consecutive_nonfinite, checkpointer)
    if not bool(_all_finite(state.params)):
      raise DivergedError(f"parameters are not finite at step {step}, so they are not saved. {_kept(checkpointer)}")
    checkpointer.save(step, state, batches.get_state(), config_json)
    saved = step

  with tqdm(total=tc.num_steps, initial=start, desc=f"{config.method}/{config.data.name}",
            unit="step", dynamic_ncols=True, mininterval=1.0, disable=writer is None) as bar:
    for step in range(start + 1, tc.num_steps + 1):
      state, metrics = train_step(state, parallel.shard_batch(next(batches), run.mesh))
      pending.append((step, metrics))
      if step % tc.log_every == 0 or step == tc.num_steps:
        log(step)
      if log_images is not None and (step % tc.image_every == 0 or step == tc.num_steps):
        log_images(step, state)
      if step % config.checkpoint.every_steps == 0 or step == tc.num_steps:
        save(step)
      bar.update(1)
      if stop.reached(step):
        break
    step = int(state.step)
    if stop.requested and step != saved:  # preempted between checkpoints
      if pending:
        log(step)
      save(step)
  checkpointer.wait_until_finished()
  return state
