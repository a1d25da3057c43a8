"""What every method of the framework shares: the train state, optimizers, the guarded update.

A method module (``vaegan.py``, ``tvae.py``) builds its networks and losses, computes one
gradient per network, and hands them to ``apply_updates``, which applies each network's
optax update unless the step is non-finite (or its balancing gate is closed) and keeps the
non-finite counters. No Python branch depends on device values.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

Params = dict[str, Any]


class TrainState(flax.struct.PyTreeNode):
  """The whole run as one pytree (what jit shards and orbax saves).

  Attributes:
    step: i32[] number of completed train steps.
    rng: u32[2] raw key data of the run's base PRNG key (``jax.random.key_data``); the
      key of step ``s`` is ``fold_in(rng, s)``, so it never needs to be advanced.
    params: {network name: parameter tree}, networks as in ``NETWORKS[config.method]``.
    batch_stats: {network name: BatchNorm running statistics}.
    opt_state: {network name: optax state}.
    nonfinite_steps: i32[] steps skipped so far because a loss or gradient was NaN or
      infinite (their update was not applied).
    nonfinite_streak: i32[] how many of the latest steps in a row were skipped (0 after a
      good step).
  """

  step: jax.Array
  rng: jax.Array
  params: Params
  batch_stats: Params
  opt_state: Params
  nonfinite_steps: jax.Array
  nonfinite_streak: jax.Array


def learning_rate_schedule(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                           batch_size: int | None = None, num_steps: int | None = None) -> optax.Schedule:
  """The learning rate of one optimizer: ``schedule(count)`` gives f32[] for a step count (i32[]).

  The rate is constant within an epoch (staircase). An epoch is ``steps_per_epoch`` steps (one
  pass over the training split) when ``optim.decay_epoch_images`` is 0; otherwise it is that
  many images seen, so step ``count`` is in epoch ``floor(count * batch_size / decay_epoch_images)``.
  With ``lr = optim.learning_rate``, ``lr_min = optim.min_learning_rate`` and epoch ``e``:

  * ``schedule="exponential"``: ``max(lr * decay_per_epoch ** e, lr_min)``. With
    ``decay_per_epoch == 1`` the rate is constant and ``lr_min`` is unused (optax treats
    ``end_value`` as an *upper* bound when the rate does not decay).
  * ``schedule="power"``: ``lr - (e / E) ** decay_power * (lr - lr_min)`` with ``E`` the
    epochs of the whole run (``num_steps`` steps). This is Larsen et al.'s code
    (andersbll/autoencoding_beyond_pixels ``aegan.train``: deeppy's ``GammaAnnealer(0.02,
    1e-5, 150, gamma=0.75)`` divided by the batch of 64, i.e. 3.1e-4 down to 1.6e-7 over 150
    epochs of 250 batches), not a decay by 0.75 per epoch. Its epoch was 16,000 images, so a
    run of any dataset size that sets ``decay_epoch_images=16_000`` follows it per image.

  Either is then multiplied by ``step_decay`` at each epoch of ``step_decay_epochs`` (Makhzani
  et al.'s drops; these epochs are always passes over the training split).

  Args:
    optim: a ``config.optim.<network>`` section.
    steps_per_epoch: train steps per pass over the training split.
    batch_size: images per step (``config.train.batch_size``); needed when
      ``optim.decay_epoch_images`` > 0.
    num_steps: steps of the whole run (``config.train.num_steps``); needed by "power".

  Raises:
    ValueError: a value the schedule needs was not passed.
  """
  decays = optim.decay_per_epoch < 1.0 or optim.schedule == "power"
  images = optim.decay_epoch_images
  if images and not batch_size:
    raise ValueError("optim.decay_epoch_images counts images: pass the batch size (config.train.batch_size)")
  if optim.schedule == "power" and not num_steps:
    raise ValueError("optim.schedule='power' decays over the whole run: pass its steps (config.train.num_steps)")
  if images:
    epoch_of = lambda count: (jnp.asarray(count, jnp.int32) * batch_size) // images  # exact in int32
    run_epochs = (num_steps or 0) * batch_size / images
  else:
    epoch_of = lambda count: jnp.asarray(count, jnp.int32) // max(1, steps_per_epoch)
    run_epochs = (num_steps or 0) / max(1, steps_per_epoch)
  lr, lr_min = optim.learning_rate, optim.min_learning_rate
  if optim.schedule == "power":
    def per_epoch(count):
      progress = epoch_of(count).astype(jnp.float32) / run_epochs
      return jnp.float32(lr) - progress ** optim.decay_power * jnp.float32(lr - lr_min)
  else:
    # The epoch counted here and handed to optax (one transition per epoch): per pass over the
    # split this is exactly the schedule of every run saved before decay_epoch_images existed.
    by_epoch = optax.exponential_decay(init_value=lr, transition_steps=1, decay_rate=optim.decay_per_epoch,
                                       staircase=True, end_value=lr_min if decays else None)
    per_epoch = lambda count: by_epoch(epoch_of(count))
  drops = tuple(optim.step_decay_epochs)
  if not drops:
    return per_epoch
  steps = optax.piecewise_constant_schedule(1.0, {e * max(1, steps_per_epoch): optim.step_decay for e in drops})
  return lambda count: per_epoch(count) * steps(count)


def make_optimizers(config: ml_collections.ConfigDict, networks: Sequence[str],
                    steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """One optax optimizer per network: L2 weight decay, then RMSProp, Adam or SGD on a decayed schedule.

  Args:
    config: a validated config; reads ``config.optim.<network>`` (``optimizer`` is
      "rmsprop", as in Larsen et al.'s code, "adam", as in Kingma & Welling's VAE and TVAE, or
      "sgd" with ``momentum``, as in Makhzani et al.'s AAE).
    networks: the names of the method's networks.
    steps_per_epoch: train steps per pass over the training split (the schedule's epoch,
      unless ``config.optim.<network>.decay_epoch_images`` sets it in images).

  Returns:
    {network name: optax transformation}.
  """
  txs = {}
  for name in networks:
    o = config.optim[name]
    schedule = learning_rate_schedule(o, steps_per_epoch, config.train.batch_size, config.train.num_steps)
    if o.optimizer == "adam":
      update = optax.adam(schedule, b1=o.adam_b1, eps=o.eps)
    elif o.optimizer == "sgd":
      update = optax.sgd(schedule, momentum=o.momentum or None)
    else:
      update = optax.rmsprop(schedule, decay=o.rmsprop_decay, eps=o.eps)
    txs[name] = optax.chain(optax.add_decayed_weights(o.weight_decay), update)
  return txs


def images_to_float(images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] in 0..255 -> f32[batch, h, w, c] in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def _init_inputs(image_shape: Sequence[int], latent_dim: int, batch: int = 2):
  x = jnp.zeros((batch, *image_shape), jnp.float32)
  z = jnp.zeros((batch, latent_dim), jnp.float32)
  return {"encoder": x, "decoder": z, "discriminator": x}


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                       optimizers: dict[str, optax.GradientTransformation],
                       latent_dim: int | None = None, init_inputs: dict[str, jax.Array] | None = None) -> TrainState:
  """Initialises every network and optimizer.

  Args:
    rng: a typed PRNG key (``jax.random.key(seed)``).
    config: a validated config.
    models: from ``build_models``.
    optimizers: from ``make_optimizers``.
    latent_dim: the decoder's input size (default ``config.model.latent_dim``).
    init_inputs: {network: example input} for networks that take neither images nor z.

  Returns:
    A ``TrainState`` at step 0. Use under ``jax.eval_shape`` for an abstract state.
  """
  image_shape = models["decoder"].image_shape
  inputs = _init_inputs(image_shape, config.model.latent_dim if latent_dim is None else latent_dim)
  inputs.update(init_inputs or {})
  init_key, run_key = jax.random.split(rng)
  params, batch_stats, opt_state = {}, {}, {}
  for i, (name, model) in enumerate(models.items()):
    variables = model.init(jax.random.fold_in(init_key, i), inputs[name], train=False)
    params[name] = variables["params"]
    batch_stats[name] = variables.get("batch_stats", {})
    opt_state[name] = optimizers[name].init(params[name])
  return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(run_key),
                    params=params, batch_stats=batch_stats, opt_state=opt_state,
                    nonfinite_steps=jnp.zeros((), jnp.int32), nonfinite_streak=jnp.zeros((), jnp.int32))


def select(mask: jax.Array, new, old):
  return jax.tree.map(lambda n, o: jnp.where(mask > 0, n, o), new, old)


def all_finite(tree) -> jax.Array:
  """bool[]: every element of every leaf of ``tree`` is finite (no NaN, no +-inf)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def learning_rates(schedules: dict[str, optax.Schedule] | None, step: jax.Array) -> dict[str, jax.Array]:
  """{"train/lr_<optimizer>": f32[] rate at ``step``} for the logged metrics."""
  return {f"train/lr_{name}": jnp.asarray(schedule(step), jnp.float32) for name, schedule in (schedules or {}).items()}


def optimizer_step(tx: optax.GradientTransformation, grads, opt_state, params):
  """One optax update: ``(new_params, new_opt_state)``."""
  updates, new_opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), new_opt_state


def commit(state: TrainState, finite: jax.Array, params: Params, opt_state: Params,
           batch_stats: Params) -> tuple[TrainState, dict[str, jax.Array]]:
  """The state after a step: the new trees if ``finite``, else the old ones; counters updated.

  Args:
    state: the state before the step.
    finite: bool[] the step's losses and gradients were all finite.
    params, opt_state, batch_stats: the trees the step computed (same structure as the state's).

  Returns:
    (new_state, metrics): ``step`` + 1 always; metrics ``train/nonfinite`` (1.0 when skipped),
    ``train/nonfinite_steps`` and ``train/nonfinite_streak``.
  """
  bad = 1 - finite.astype(jnp.int32)
  nonfinite_steps = state.nonfinite_steps + bad
  nonfinite_streak = (state.nonfinite_streak + 1) * bad
  new_state = state.replace(step=state.step + 1, params=select(finite, params, state.params),
                            opt_state=select(finite, opt_state, state.opt_state),
                            batch_stats=select(finite, batch_stats, state.batch_stats),
                            nonfinite_steps=nonfinite_steps, nonfinite_streak=nonfinite_streak)
  metrics = {"train/nonfinite": bad.astype(jnp.float32),
             "train/nonfinite_steps": nonfinite_steps.astype(jnp.float32),
             "train/nonfinite_streak": nonfinite_streak.astype(jnp.float32)}
  return new_state, metrics


def step_key(state: TrainState) -> jax.Array:
  """The typed PRNG key of the step ``state.step`` (``fold_in`` of the run's key: nothing to advance)."""
  return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def minimise(state: TrainState, loss_fn, optimizers: dict[str, optax.GradientTransformation],
             schedules: dict[str, optax.Schedule] | None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One step of a method whose networks all minimise one loss (TVAE, ML-VAE).

  Args:
    state: the state before the step.
    loss_fn: ``params -> (loss, (terms, new_batch_stats))``: the f32 scalar, a dict of f32
      scalars to log, and the BatchNorm statistics after the forward pass.
    optimizers: {network: optax transformation}.
    schedules: {optimizer: learning-rate schedule} for the logged rates, or None.

  Returns:
    (new_state, metrics): as ``apply_updates``; metrics hold ``train/<term>``, ``train/loss``,
    the non-finite counters and ``train/lr_<optimizer>``.
  """
  (loss, (terms, new_batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state, health = apply_updates(state, grads, optimizers, loss, new_batch_stats)
  metrics = {f"train/{name}": value for name, value in terms.items()}
  metrics["train/loss"] = loss
  metrics.update(health)
  metrics.update(learning_rates(schedules, state.step))
  return new_state, metrics


def apply_updates(state: TrainState, grads: Params, optimizers: dict[str, optax.GradientTransformation],
                  losses_to_check: Any, new_batch_stats: Params,
                  gates: dict[str, jax.Array] | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step per network, skipped entirely when the step is not finite.

  Args:
    state: the state before the step.
    grads: {network: gradient tree like its params}.
    optimizers: {network: optax transformation}.
    losses_to_check: a pytree of the step's losses; with ``grads`` it decides finiteness.
    new_batch_stats: BatchNorm statistics after the forward pass (kept only if finite).
    gates: optional {network: f32[] 0/1}; 0 leaves that network unchanged (equilibrium
      balancing). Missing networks are always updated.

  Returns:
    As ``commit``.
  """
  finite = all_finite((losses_to_check, grads))
  params, opt_state = dict(state.params), dict(state.opt_state)
  for name, tx in optimizers.items():
    new_params, new_opt = optimizer_step(tx, grads[name], state.opt_state[name], state.params[name])
    gate = (gates or {}).get(name, jnp.float32(1.0))
    params[name] = select(gate, new_params, state.params[name])
    opt_state[name] = select(gate, new_opt, state.opt_state[name])
  return commit(state, finite, params, opt_state, new_batch_stats)
