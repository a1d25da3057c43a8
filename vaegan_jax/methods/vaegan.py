"""VAE/GAN (Larsen et al. 2016) and its two baselines, VAE and GAN, as one train step.

``config.method`` picks which networks exist; everything else is shared:

=========  =======================  ========================  =========================
method     encoder                  decoder                   discriminator
=========  =======================  ========================  =========================
vaegan     L_prior + L_llike^Dis_l  gamma*L_llike + L_adv     L_GAN (x, Dec(z), Dec(z_p))
vae        L_prior + L_llike^pixel  L_llike^pixel             (none)
gan        (none)                   L_adv                     L_GAN (x, Dec(z_p))
=========  =======================  ========================  =========================

L_adv is ``config.loss.generator``: "minimax" is Algorithm 1's -L_GAN (its fake-image terms),
"non_saturating" (the default) is BCE(Dis(Dec(.)), 1); see ``losses.generator_adversarial_loss``.

One forward pass computes every loss; ``jax.vjp`` pulls it back once per network with a
one-hot cotangent, so each network gets the gradient of its own loss only: the encoder never
sees a GAN gradient, the discriminator never sees L_llike. Three optax optimizers (RMSProp
with per-epoch exponential decay, as in the original code) update the three parameter trees.
Equilibrium balancing gates the decoder and discriminator updates with traced 0/1 masks.

A step whose losses or gradients are not all finite changes nothing but the step counter
and the non-finite counters of ``TrainState`` (a traced select, no host sync); the train
loop reads those counters when it logs and stops after ``train.max_consecutive_nonfinite``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vaegan_jax import losses
from vaegan_jax.models import Decoder, Discriminator, Encoder, check_image_shape

Params = dict[str, Any]

NETWORKS = {
    "vaegan": ("encoder", "decoder", "discriminator"),
    "vae": ("encoder", "decoder"),
    "gan": ("decoder", "discriminator"),
}


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


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """The networks of ``config.method``, sized from the config and the dataset's image shape.

  Args:
    config: a validated config (see ``vaegan_jax.config``).
    image_shape: (height, width, channels) of the dataset's images.

  Returns:
    {network name: flax module}.

  Raises:
    ValueError: the networks cannot take images of ``image_shape`` (see ``check_image_shape``).
  """
  m = config.model
  check_image_shape(image_shape, {name: m[f"{name}_features"] for name in NETWORKS[config.method]})
  dtype = jnp.dtype(m.dtype)
  bn = dict(bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon, dtype=dtype)
  all_models = {
      "encoder": Encoder(latent_dim=m.latent_dim, features=tuple(m.encoder_features), dense=m.encoder_dense, **bn),
      "decoder": Decoder(image_shape=tuple(image_shape), features=tuple(m.decoder_features), **bn),
      "discriminator": Discriminator(features=tuple(m.discriminator_features), dense=m.discriminator_dense, **bn),
  }
  return {name: all_models[name] for name in NETWORKS[config.method]}


def learning_rate_schedule(optim: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """lr * decay_per_epoch ** epoch (staircase), floored at min_learning_rate (original code)."""
  return optax.exponential_decay(
      init_value=optim.learning_rate, transition_steps=max(1, steps_per_epoch),
      decay_rate=optim.decay_per_epoch, staircase=True, end_value=optim.min_learning_rate)


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """One optax optimizer per network: L2 weight decay then RMSProp on a decayed schedule.

  Args:
    config: a validated config; reads ``config.optim.<network>``.
    steps_per_epoch: train steps per pass over the training split (for the per-epoch decay).

  Returns:
    {network name: optax transformation}.
  """
  txs = {}
  for name in NETWORKS[config.method]:
    o = config.optim[name]
    txs[name] = optax.chain(
        optax.add_decayed_weights(o.weight_decay),
        optax.rmsprop(learning_rate_schedule(o, steps_per_epoch), decay=o.rmsprop_decay, eps=o.eps))
  return txs


def images_to_float(images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] in 0..255 -> f32[batch, h, w, c] in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def _init_inputs(config, image_shape, batch: int = 2):
  x = jnp.zeros((batch, *image_shape), jnp.float32)
  z = jnp.zeros((batch, config.model.latent_dim), jnp.float32)
  return {"encoder": x, "decoder": z, "discriminator": x}


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                       optimizers: dict[str, optax.GradientTransformation]) -> TrainState:
  """Initialises every network and optimizer.

  Args:
    rng: a typed PRNG key (``jax.random.key(seed)``).
    config: a validated config.
    models: from ``build_models``.
    optimizers: from ``make_optimizers``.

  Returns:
    A ``TrainState`` at step 0. Use under ``jax.eval_shape`` for an abstract state.
  """
  image_shape = models["decoder"].image_shape
  inputs = _init_inputs(config, image_shape)
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


def compute_losses(models: dict[str, nn.Module], config: ml_collections.ConfigDict, params: Params,
                   batch_stats: Params, images: jax.Array, key: jax.Array, train: bool = True):
  """One forward pass: every network's loss and every logged term.

  Args:
    models: from ``build_models``.
    config: a validated config.
    params, batch_stats: {network name: tree}.
    images: f32[batch, h, w, c] in [-1, 1].
    key: typed PRNG key for the posterior and prior samples.
    train: BatchNorm uses batch statistics and updates the running ones (training); False
      uses the running statistics and returns ``batch_stats`` unchanged (evaluation).

  Returns:
    (network_losses, (terms, new_batch_stats)): ``network_losses`` maps each network to
    the f32 scalar it minimises; ``terms`` holds f32 scalars kl, llike, loss_gan,
    real_cost, fake_cost, d_x, d_recon, d_prior (the last three are mean sigmoid
    probabilities in [0, 1]) for whichever exist.
  """
  nets = NETWORKS[config.method]
  batch = images.shape[0]
  key_eps, key_prior = jax.random.split(key)
  terms, new_stats = {}, {}

  def apply(name, x):
    variables = {"params": params[name], "batch_stats": batch_stats[name]}
    if not train:
      new_stats[name] = batch_stats[name]
      return models[name].apply(variables, x, train=False)
    out, mutated = models[name].apply(variables, x, train=True, mutable=["batch_stats"])
    new_stats[name] = mutated["batch_stats"]
    return out

  z_p = jax.random.normal(key_prior, (batch, config.model.latent_dim))
  if "encoder" in nets:
    mu, logvar = apply("encoder", images)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key_eps, mu.shape)
    terms["kl"] = jnp.mean(losses.kl_divergence(mu, logvar))
    decoded = apply("decoder", jnp.concatenate([z, z_p]))
    x_recon, x_prior = decoded[:batch], decoded[batch:]
  else:
    x_recon, x_prior = None, apply("decoder", z_p)

  network_losses = {}
  if "discriminator" in nets:
    generated = [x_recon, x_prior] if x_recon is not None else [x_prior]
    logits, dis_l = apply("discriminator", jnp.concatenate([images, *generated]))
    logits = logits.reshape(1 + len(generated), batch)
    dis_l = dis_l.reshape(1 + len(generated), batch, *dis_l.shape[1:])
    gan, real_cost, fake_cost = losses.gan_loss(logits[0], tuple(logits[1:]))
    terms.update(loss_gan=gan, real_cost=real_cost, fake_cost=fake_cost,
                 d_x=jnp.mean(nn.sigmoid(logits[0])), d_prior=jnp.mean(nn.sigmoid(logits[-1])))
    adversarial = losses.generator_adversarial_loss(tuple(logits[1:]), config.loss.generator)
    network_losses["discriminator"] = gan
    if x_recon is not None:
      terms["d_recon"] = jnp.mean(nn.sigmoid(logits[1]))
  else:
    adversarial = 0.0

  if "encoder" in nets:
    if config.loss.llike == "dis_l":
      terms["llike"] = jnp.mean(losses.gaussian_nll(dis_l[0], dis_l[1]))
      gamma = config.loss.gamma
    else:
      terms["llike"] = jnp.mean(losses.gaussian_nll(images, x_recon, config.loss.pixel_log_scale))
      gamma = 1.0
    network_losses["encoder"] = terms["kl"] + terms["llike"]
    network_losses["decoder"] = gamma * terms["llike"] + adversarial
  else:
    network_losses["decoder"] = adversarial
  return network_losses, (terms, new_stats)


def loss_and_grads(models, config, params: Params, batch_stats: Params, images: jax.Array, key: jax.Array):
  """Each network's gradient of its own loss, from one shared forward pass.

  Returns:
    (grads, terms, network_losses, new_batch_stats): grads is {network: tree like params}.
  """
  def fn(p):
    return compute_losses(models, config, p, batch_stats, images, key)

  network_losses, pullback, (terms, new_stats) = jax.vjp(fn, params, has_aux=True)
  grads = {}
  for name in params:
    cotangent = {n: jnp.asarray(1.0 if n == name else 0.0, jnp.float32) for n in network_losses}
    grads[name] = pullback(cotangent)[0][name]
  return grads, terms, network_losses, new_stats


def _select(mask: jax.Array, new, old):
  return jax.tree.map(lambda n, o: jnp.where(mask > 0, n, o), new, old)


def all_finite(tree) -> jax.Array:
  """bool[]: every element of every leaf of ``tree`` is finite (no NaN, no +-inf)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def make_train_step(config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                    optimizers: dict[str, optax.GradientTransformation],
                    schedules: dict[str, optax.Schedule] | None = None) -> Callable:
  """Builds the pure train step ``(state, batch) -> (state, metrics)``; jit it with donation.

  The batch is ``{"image": u8[batch, h, w, c]}`` (other keys are ignored; a float array of
  the same 0..255 range also works, which is how tests plant a NaN). Metrics are f32 scalars
  under ``train/``: every loss term, ``d_x``/``d_recon``/``d_prior`` (mean discriminator
  probabilities), ``update_decoder``/``update_discriminator`` (1.0 when that network was
  updated this step), ``nonfinite`` (1.0 when this step was skipped), ``nonfinite_steps``
  and ``nonfinite_streak`` (the state's counters after this step).

  Skipping: if any network's loss or gradient is NaN or infinite, no parameter, optimizer
  state or BatchNorm statistic changes; ``step`` still advances (the batch is consumed and
  the next step gets the next key), ``nonfinite_steps`` and ``nonfinite_streak`` grow by one.
  No Python branch depends on device values.
  """
  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    images = images_to_float(batch["image"])
    grads, terms, network_losses, new_stats = loss_and_grads(
        models, config, state.params, state.batch_stats, images, key)

    masks = {name: jnp.float32(1.0) for name in state.params}
    if config.balance.enabled and "discriminator" in state.params:
      masks["decoder"], masks["discriminator"] = losses.balance_masks(
          terms["real_cost"], terms["fake_cost"], config.balance.equilibrium, config.balance.margin)

    finite = all_finite((network_losses, grads))
    params, opt_state = {}, {}
    for name, tx in optimizers.items():
      updates, new_opt = tx.update(grads[name], state.opt_state[name], state.params[name])
      new_params = optax.apply_updates(state.params[name], updates)
      apply = masks[name] * finite
      params[name] = _select(apply, new_params, state.params[name])
      opt_state[name] = _select(apply, new_opt, state.opt_state[name])
    batch_stats = _select(finite, new_stats, state.batch_stats)
    bad = 1 - finite.astype(jnp.int32)
    nonfinite_steps = state.nonfinite_steps + bad
    nonfinite_streak = (state.nonfinite_streak + 1) * bad

    metrics = {f"train/{k}": v for k, v in terms.items()}
    metrics.update({f"train/loss_{n}": v for n, v in network_losses.items()})
    if "discriminator" in state.params:
      metrics["train/update_decoder"] = masks["decoder"] * finite
      metrics["train/update_discriminator"] = masks["discriminator"] * finite
    metrics["train/nonfinite"] = bad.astype(jnp.float32)
    metrics["train/nonfinite_steps"] = nonfinite_steps.astype(jnp.float32)
    metrics["train/nonfinite_streak"] = nonfinite_streak.astype(jnp.float32)
    for name, schedule in (schedules or {}).items():
      metrics[f"train/lr_{name}"] = jnp.asarray(schedule(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              nonfinite_steps=nonfinite_steps, nonfinite_streak=nonfinite_streak)
    return new_state, metrics

  return train_step


def _apply_eval(models, state: TrainState, name: str, x: jax.Array):
  return models[name].apply({"params": state.params[name], "batch_stats": state.batch_stats[name]}, x, train=False)


def encode(models, state: TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """u8[batch, h, w, c] -> (mu, logvar), each f32[batch, latent]: q(z|x) with running BN statistics."""
  return _apply_eval(models, state, "encoder", images_to_float(images))


def reconstruct(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] -> f32[batch, h, w, c] in [-1, 1]: Dec(mu(x)), running BN statistics."""
  mu, _ = encode(models, state, images)
  return _apply_eval(models, state, "decoder", mu)


def sample(models, state: TrainState, z: jax.Array) -> jax.Array:
  """f32[batch, latent] latents (prior draws, or edited encodings) -> f32[batch, h, w, c] images in [-1, 1]."""
  return _apply_eval(models, state, "decoder", z)


def eval_step(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array,
              key: jax.Array) -> dict[str, jax.Array]:
  """Batch means of the loss terms on held-out images, with running BatchNorm statistics.

  Args:
    models, config: as for ``make_train_step``.
    state: a trained ``TrainState``.
    images: u8[batch, h, w, c].
    key: typed PRNG key for the posterior and prior samples.

  Returns:
    f32 scalars: the terms of ``compute_losses`` (kl, llike in nats per image; loss_gan;
    d_x, d_recon, d_prior in [0, 1]) for the networks that exist, and for encoder models
    ``pixel_mse`` (mean squared error of Dec(mu) on [-1, 1] pixels), ``pixel_nll`` (Gaussian
    NLL of x under Dec(z), std ``exp(config.loss.pixel_log_scale)``, nats per image) and, with
    a discriminator, ``dis_l_mse`` (mean squared Dis_l error of Dec(mu), per feature).
  """
  x = images_to_float(images)
  _, (terms, _) = compute_losses(models, config, state.params, state.batch_stats, x, key, train=False)
  if "encoder" in state.params:
    mu, logvar = encode(models, state, images)
    recon = _apply_eval(models, state, "decoder", mu)
    terms["pixel_mse"] = jnp.mean(jnp.square(recon - x))
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.fold_in(key, 1), mu.shape)
    terms["pixel_nll"] = jnp.mean(losses.gaussian_nll(x, _apply_eval(models, state, "decoder", z),
                                                      config.loss.pixel_log_scale))
    if "discriminator" in state.params:
      _, dis_l = _apply_eval(models, state, "discriminator", jnp.concatenate([x, recon]))
      terms["dis_l_mse"] = jnp.mean(jnp.square(dis_l[:len(x)] - dis_l[len(x):]))
  return terms
