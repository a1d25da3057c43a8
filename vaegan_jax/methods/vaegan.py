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

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vaegan_jax import losses
from vaegan_jax.data import pipeline
from vaegan_jax.methods import common
# TrainState, create_train_state, learning_rate_schedule and all_finite are part of every method
# module's interface (see methods/__init__.py), so they are re-exported here.
from vaegan_jax.methods.common import (Params, TrainState, all_finite, create_train_state, images_to_float,  # noqa: F401
                                       learning_rate_schedule)
from vaegan_jax.models import Decoder, Discriminator, Encoder, check_image_shape

NETWORKS = {
    "vaegan": ("encoder", "decoder", "discriminator"),
    "vae": ("encoder", "decoder"),
    "gan": ("decoder", "discriminator"),
}
train_dataset = pipeline.train_dataset  # what the train loop iterates over: batches of images


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
  bn = dict(bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon, dtype=dtype, padding=m.conv_padding)
  all_models = {
      "encoder": Encoder(latent_dim=m.latent_dim, features=tuple(m.encoder_features), dense=m.encoder_dense, **bn),
      "decoder": Decoder(image_shape=tuple(image_shape), features=tuple(m.decoder_features), **bn),
      "discriminator": Discriminator(features=tuple(m.discriminator_features), dense=m.discriminator_dense, **bn),
  }
  return {name: all_models[name] for name in NETWORKS[config.method]}


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """``common.make_optimizers`` for the networks of ``config.method``."""
  return common.make_optimizers(config, NETWORKS[config.method], steps_per_epoch)


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
    key = common.step_key(state)
    images = images_to_float(batch["image"])
    grads, terms, network_losses, new_stats = loss_and_grads(
        models, config, state.params, state.batch_stats, images, key)

    masks = {name: jnp.float32(1.0) for name in state.params}
    if config.balance.enabled and "discriminator" in state.params:
      masks["decoder"], masks["discriminator"] = losses.balance_masks(
          terms["real_cost"], terms["fake_cost"], config.balance.equilibrium, config.balance.margin)

    new_state, health = common.apply_updates(state, grads, optimizers, network_losses, new_stats, masks)
    finite = 1.0 - health["train/nonfinite"]
    metrics = {f"train/{k}": v for k, v in terms.items()}
    metrics.update({f"train/loss_{n}": v for n, v in network_losses.items()})
    if "discriminator" in state.params:
      metrics["train/update_decoder"] = masks["decoder"] * finite
      metrics["train/update_discriminator"] = masks["discriminator"] * finite
    metrics.update(health)
    metrics.update(common.learning_rates(schedules, state.step))
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
