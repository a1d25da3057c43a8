"""The train loop: ``train_and_evaluate(config, workdir)``.

Resumes from the newest checkpoint in ``workdir`` if there is one (state, optimizer states,
data position), so killing a run and starting the same command again continues it exactly.
Metrics leave the device every ``train.log_every`` steps only (no per-step host sync).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from vaegan_jax import config as config_lib
from vaegan_jax import data, images, parallel
from vaegan_jax.checkpoint import Checkpointer, abstract_with_sharding
from vaegan_jax.methods import vaegan
from vaegan_jax.metric_writers import MetricWriter

# Config sections that define what a checkpoint *is*; a resume with other values is refused.
_IDENTITY_KEYS = ("method", "data.name", "model")


@dataclasses.dataclass
class Run:
  """Everything built from a config before any array is allocated."""

  config: ml_collections.ConfigDict
  info: data.DatasetInfo
  mesh: jax.sharding.Mesh
  models: dict
  optimizers: dict[str, optax.GradientTransformation]
  schedules: dict[str, optax.Schedule]
  steps_per_epoch: int

  def init_state(self) -> vaegan.TrainState:
    """A fresh, replicated train state from ``config.seed``."""
    create = functools.partial(vaegan.create_train_state, config=self.config, models=self.models,
                               optimizers=self.optimizers)
    return jax.jit(create, out_shardings=parallel.replicated(self.mesh))(jax.random.key(self.config.seed))

  def abstract_state(self):
    create = functools.partial(vaegan.create_train_state, config=self.config, models=self.models,
                               optimizers=self.optimizers)
    shapes = jax.eval_shape(create, jax.random.key(self.config.seed))
    return abstract_with_sharding(shapes, parallel.replicated(self.mesh))


def setup(config: ml_collections.ConfigDict, devices=None) -> Run:
  """Validates the config, prepares the data and builds networks, optimizers and the mesh.

  Raises:
    ValueError: a bad config value, or a batch that does not split over the devices.
  """
  config_lib.validate(config)
  info = data.dataset_info(config)
  mesh = parallel.make_mesh(devices)
  parallel.check_batch_size(config.train.batch_size, mesh)
  steps_per_epoch = max(1, info.num_train // config.train.batch_size)
  models = vaegan.build_models(config, info.image_shape)
  schedules = {name: vaegan.learning_rate_schedule(config.optim[name], steps_per_epoch) for name in models}
  optimizers = vaegan.make_optimizers(config, steps_per_epoch)
  return Run(config, info, mesh, models, optimizers, schedules, steps_per_epoch)


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
           if any(k == p or k.startswith(p + ".") for p in _IDENTITY_KEYS) and saved.get(k) != current.get(k)]
  if diffs:
    raise ValueError(f"{where} holds a run of another model or dataset ({'; '.join(diffs[:5])}). "
                     "Use a new --workdir, or the config that run was started with.")


@jax.jit
def _all_finite(tree) -> jax.Array:
  """bool[]: every leaf of ``tree`` is finite (one device reduction, one host read)."""
  return jax.tree.reduce(lambda a, b: a & b, jax.tree.map(lambda x: jax.numpy.all(jax.numpy.isfinite(x)), tree), True)


class _ImageLogger:
  """Writes reconstruction and prior-sample grids of fixed test images and fixed z."""

  def __init__(self, run: Run, workdir: str, writer: MetricWriter):
    rows = run.config.train.num_image_rows
    self.columns, self.dir, self.writer = rows, os.path.join(workdir, "images"), writer
    self.has_encoder = "encoder" in run.models
    self.test_images = data.eval_images(run.config, rows * rows // 2)["image"]
    self.z = jax.random.normal(jax.random.key(run.config.seed + 1), (rows * rows, run.config.model.latent_dim))
    self._reconstruct = jax.jit(functools.partial(vaegan.reconstruct, run.models))
    self._sample = jax.jit(functools.partial(vaegan.sample, run.models))

  def __call__(self, step: int, state) -> None:
    grids = {"samples": images.make_grid(images.to_uint8(self._sample(state, self.z)), self.columns)}
    if self.has_encoder:
      recon = images.to_uint8(self._reconstruct(state, self.test_images))
      grids["reconstructions"] = images.make_grid(
          images.interleave_rows(self.test_images, recon, self.columns), self.columns)
    for name, grid in grids.items():
      images.save_png(os.path.join(self.dir, f"{name}_{step:07d}.png"), grid)
      self.writer.write_image(step, name, grid)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None) -> vaegan.TrainState:
  """Trains ``config`` in ``workdir``, resuming from its newest checkpoint.

  Leaves ``workdir/checkpoints/<step>``, ``metrics.jsonl``, ``tensorboard/`` and
  ``images/{reconstructions,samples}_<step>.png``.

  Args:
    config: a config from ``configs/*.py``.
    workdir: the run's folder (created if missing).
    devices: devices of the data mesh (default: all).

  Returns:
    The final train state.

  Raises:
    ValueError: bad config, or a workdir holding another model's run.
    FloatingPointError: a loss became NaN or infinite (the last good checkpoint is kept).
  """
  run = setup(config, devices)
  os.makedirs(workdir, exist_ok=True)
  tc = config.train
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.max_to_keep)
  latest = checkpointer.latest_step()
  if latest is None:
    state, data_state = run.init_state(), None
  else:
    check_same_run(checkpointer.restore_config(latest), config, workdir)
    state, data_state, _ = checkpointer.restore(latest, run.abstract_state())
    print(f"resuming from step {latest} in {workdir}")
  start = int(state.step)
  config_json = config_lib.to_json(config)

  batches = data.train_iterator(config, tc.batch_size, seed=config.seed, state=data_state)
  train_step = parallel.jit_train_step(
      vaegan.make_train_step(config, run.models, run.optimizers, run.schedules), run.mesh)
  writer = MetricWriter(workdir)
  log_images = _ImageLogger(run, workdir, writer)

  pending: list[dict] = []
  last_time, last_step = time.perf_counter(), start
  try:
    with tqdm(total=tc.num_steps, initial=start, desc=f"{config.method}/{config.data.name}",
              unit="step", dynamic_ncols=True, mininterval=1.0) as bar:
      for step in range(start + 1, tc.num_steps + 1):
        state, metrics = train_step(state, parallel.shard_batch(next(batches), run.mesh))
        pending.append(metrics)
        if step % tc.log_every == 0 or step == tc.num_steps:
          host = jax.device_get(pending)  # the only sync: once per log_every steps
          means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
          now = time.perf_counter()
          means["train/images_per_second"] = (step - last_step) * tc.batch_size / (now - last_time)
          means["train/epoch"] = step / run.steps_per_epoch
          last_time, last_step, pending = now, step, []
          bad = [k for k, v in means.items() if not np.isfinite(v)]
          if bad:
            raise FloatingPointError(
                f"non-finite {bad} at step {step}; checkpoint {checkpointer.latest_step()} is kept. "
                "Lower the learning rates or gamma, or keep balancing on (--config.balance.enabled=True).")
          writer.write_scalars(step, means)
          bar.set_postfix({"img/s": f"{means['train/images_per_second']:.1f}",
                           **{k.split("/")[1]: f"{v:.3g}" for k, v in means.items()
                              if k.split("/")[1] in ("loss_encoder", "loss_decoder", "loss_discriminator")}})
        if step % tc.image_every == 0 or step == tc.num_steps:
          log_images(step, state)
        if step % config.checkpoint.every_steps == 0 or step == tc.num_steps:
          if not bool(_all_finite(state.params)):
            raise FloatingPointError(f"parameters are not finite at step {step}; "
                                     f"checkpoint {checkpointer.latest_step()} is kept")
          checkpointer.save(step, state, batches.get_state(), config_json)
        bar.update(1)
  finally:  # an in-flight asynchronous save completes even when the loop raises
    checkpointer.close()
    writer.close()
  return state
