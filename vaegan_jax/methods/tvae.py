"""TVAE (Ishfaq, Hoogi, Rubin 2018): a VAE whose posterior means also learn a triplet metric.

Per step the batch holds B triplets (anchor, positive of the anchor's class, negative of
another class, drawn by ``data.triplets``). All 3B images go through the 784-400-20 VAE of
Kingma & Welling (``models.mlp``); the loss is

  elbo_weight * mean_i [KL(q(z|x_i) || N(0, I)) + BCE(x_i, Dec(z_i))]      (the negative ELBO)
  + triplet_weight * mean_t max(0, ||mu_a - mu_p||^2 - ||mu_a - mu_n||^2 + margin)
  + mu_norm_weight * mean_i ||mu_i||

(Ishfaq et al. 2018; a public script uses 0.01 * summed ELBO + triplet + 0.001 * ||mu||
with Adam 1e-3, batch 128, margin 0.2). ``loss.triplet_weight = 0`` is the plain VAE of the
same architecture, trained on the same batches. The encoder and decoder trees get their own
optax optimizers from one backward pass; non-finite steps are skipped as in every method.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vaegan_jax import losses
from vaegan_jax.data import triplets
from vaegan_jax.methods import common
from vaegan_jax.methods.common import Params, TrainState, create_train_state, images_to_float, learning_rate_schedule
from vaegan_jax.models import MLPDecoder, MLPEncoder

NETWORKS = ("encoder", "decoder")
train_dataset = triplets.triplet_dataset  # what the train loop iterates over
__all__ = ["NETWORKS", "TrainState", "build_models", "make_optimizers", "create_train_state", "compute_losses",
           "make_train_step", "encode", "reconstruct", "sample", "eval_step", "learning_rate_schedule",
           "train_dataset"]


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """{"encoder": MLPEncoder, "decoder": MLPDecoder} sized by ``config.model`` (latent_dim, mlp_hidden)."""
  m = config.model
  dtype = jnp.dtype(m.dtype)
  hidden = tuple(m.mlp_hidden)
  return {"encoder": MLPEncoder(latent_dim=m.latent_dim, hidden=hidden, dtype=dtype),
          "decoder": MLPDecoder(image_shape=tuple(image_shape), hidden=hidden[::-1], dtype=dtype)}


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """``common.make_optimizers`` for the encoder and the decoder."""
  return common.make_optimizers(config, NETWORKS, steps_per_epoch)


def _to_unit(images: jax.Array) -> jax.Array:
  """f32 images in [-1, 1] -> Bernoulli targets in [0, 1]."""
  return (images + 1.0) * 0.5


def compute_losses(models: dict[str, nn.Module], config: ml_collections.ConfigDict, params: Params,
                   images: jax.Array, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The TVAE loss of one batch of triplets.

  Args:
    models: from ``build_models``.
    config: a validated config (``loss.elbo_weight``, ``triplet_weight``, ``triplet_margin``,
      ``mu_norm_weight``).
    params: {"encoder": tree, "decoder": tree}.
    images: f32[3, batch, h, w, c] in [-1, 1]: anchors, positives, negatives.
    key: typed PRNG key for the posterior samples.

  Returns:
    (loss, terms): the f32 scalar minimised, and f32 scalars ``kl``, ``llike`` (Bernoulli
    NLL, nats per image), ``elbo`` (= -(kl + llike)), ``triplet`` (mean hinge),
    ``triplet_active`` (fraction of triplets with a non-zero hinge), ``mu_norm``.
  """
  x = images.reshape(-1, *images.shape[2:])
  mu, logvar = models["encoder"].apply({"params": params["encoder"]}, x, train=True)
  z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
  logits = models["decoder"].apply({"params": params["decoder"]}, z, train=True)
  kl = jnp.mean(losses.kl_divergence(mu, logvar))
  llike = jnp.mean(losses.bernoulli_nll(_to_unit(x), logits))
  mu_a, mu_p, mu_n = mu.reshape(3, images.shape[1], -1)
  hinge = losses.triplet_loss(mu_a, mu_p, mu_n, config.loss.triplet_margin)
  mu_norm = jnp.mean(jnp.linalg.norm(mu, axis=-1))
  loss = (config.loss.elbo_weight * (kl + llike) + config.loss.triplet_weight * jnp.mean(hinge)
          + config.loss.mu_norm_weight * mu_norm)
  return loss, {"kl": kl, "llike": llike, "elbo": -(kl + llike), "triplet": jnp.mean(hinge),
                "triplet_active": jnp.mean((hinge > 0).astype(jnp.float32)), "mu_norm": mu_norm}


def make_train_step(config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                    optimizers: dict[str, optax.GradientTransformation],
                    schedules: dict[str, optax.Schedule] | None = None) -> Callable:
  """The pure train step ``(state, batch) -> (state, metrics)``; jit it with donation.

  The batch is ``{"anchor", "positive", "negative": u8[batch, h, w, c], ...}`` (other keys are
  ignored). Metrics: the terms of ``compute_losses`` and ``loss`` under ``train/``, the
  non-finite counters, and each network's learning rate.
  """
  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    key = common.step_key(state)
    images = images_to_float(jnp.stack([batch["anchor"], batch["positive"], batch["negative"]]))

    def loss_fn(params):
      loss, terms = compute_losses(models, config, params, images, key)
      return loss, (terms, state.batch_stats)

    return common.minimise(state, loss_fn, optimizers, schedules)

  return train_step


def encode(models, state: TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """u8[batch, h, w, c] -> (mu, logvar), each f32[batch, latent]."""
  return models["encoder"].apply({"params": state.params["encoder"]}, images_to_float(images), train=False)


def sample(models, state: TrainState, z: jax.Array) -> jax.Array:
  """f32[batch, latent] -> f32[batch, h, w, c] Bernoulli means mapped to [-1, 1] (as every method's images)."""
  logits = models["decoder"].apply({"params": state.params["decoder"]}, z, train=False)
  return 2.0 * jax.nn.sigmoid(logits) - 1.0


def reconstruct(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] -> f32[batch, h, w, c] in [-1, 1]: the Bernoulli means of Dec(mu(x))."""
  return sample(models, state, encode(models, state, images)[0])


def eval_step(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array,
              key: jax.Array) -> dict[str, jax.Array]:
  """Batch means on held-out images: ``kl``, ``llike`` (Bernoulli NLL with z ~ q(z|x), nats per
  image), ``pixel_bce`` (Bernoulli NLL of x under Dec(mu), nats per image) and ``pixel_mse``
  (squared error of the Bernoulli means of Dec(mu) on [-1, 1] pixels, as for every method).

  Args:
    images: u8[batch, h, w, c].
    key: typed PRNG key for the posterior samples.
  """
  x = _to_unit(images_to_float(images))
  mu, logvar = encode(models, state, images)
  z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
  decode = lambda v: models["decoder"].apply({"params": state.params["decoder"]}, v, train=False)  # noqa: E731
  recon_logits = decode(mu)
  return {"kl": jnp.mean(losses.kl_divergence(mu, logvar)),
          "llike": jnp.mean(losses.bernoulli_nll(x, decode(z))),
          "pixel_mse": jnp.mean(jnp.square(2.0 * jax.nn.sigmoid(recon_logits) - 1.0 - images_to_float(images))),
          "pixel_bce": jnp.mean(losses.bernoulli_nll(x, recon_logits))}
