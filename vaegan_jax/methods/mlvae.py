"""ML-VAE (Bouchacourt, Tomioka, Nowozin, AAAI 2018): a VAE of grouped observations.

Each observation x_i of a group G (same digit, same identity) has its own style latent s_i
and shares the group's content latent c_G. The encoder gives q(s_i|x_i) and a
per-observation content posterior N(mu_i, diag(sigma_i^2)); the group's content posterior
is their product (``product_of_gaussians``, the paper's eq. 7 accumulation of evidence),
and one c_G ~ q(c_G|X_G) is drawn per group and decoded with every member's style. The loss
minimised is the negative group ELBO (paper eq. 6) per image:

  mean over groups of (1/K) [ sum_i -log p(x_i|s_i, c_G) + sum_i KL(q(s_i|x_i) || N(0, I))
                              + KL(q(c_G|X_G) || N(0, I)) ]

with the content KL counted once per group. Batches hold
whole groups, ``u8[groups, K, h, w, c]``, and the mesh shards the group axis, so a group's
accumulation never crosses devices; the result equals the one-device step (tested on 8).

Networks: for 28x28 digits the encoder and decoder are MLPs (``config.model.mlp_hidden``;
a public port uses 784-500-tanh, style 10, content 10) with a Bernoulli decoder, or a Gaussian
one (``loss.llike=pixel``: the port's squared error is a Gaussian of variance 1/2 on [0, 1]
pixels, ``loss.pixel_log_scale = log(sqrt(2)) = 0.3466`` on [-1, 1]); for the
64x64 faces they are Larsen et al.'s convolutional encoder and decoder (``model.*_features``)
with a Gaussian pixel likelihood (std ``exp(loss.pixel_log_scale)``). The encoder's
``latent_dim = style_dim + content_dim`` outputs are read as [style, content]: two dense
heads on a shared trunk, as in the paper.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vaegan_jax import losses
from vaegan_jax.data import groups
from vaegan_jax.methods import common
from vaegan_jax.methods.common import Params, TrainState, images_to_float, learning_rate_schedule
from vaegan_jax.models import Decoder, Encoder, MLPDecoder, MLPEncoder, check_image_shape

NETWORKS = ("encoder", "decoder")
train_dataset = groups.group_dataset  # what the train loop iterates over: batches of whole groups
__all__ = ["NETWORKS", "TrainState", "build_models", "make_optimizers", "create_train_state", "learning_rate_schedule",
           "product_of_gaussians", "compute_losses", "make_train_step", "encode", "decode",
           "sample", "reconstruct", "eval_step", "prior_sample", "batch_group_size", "train_dataset"]


def latent_dim(config: ml_collections.ConfigDict) -> int:
  """The decoder's input size: ``mlvae.style_dim + mlvae.content_dim``."""
  return config.mlvae.style_dim + config.mlvae.content_dim


def batch_group_size(config: ml_collections.ConfigDict) -> int:
  """Images per group: a global batch of ``train.batch_size`` images is this many per mesh row."""
  return config.mlvae.group_size


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """{"encoder", "decoder"}: MLPs (``mlvae.networks == "mlp"``) or Larsen et al.'s convolutional
  networks ("conv"), with ``style_dim + content_dim`` latents.

  Raises:
    ValueError: images too small for the convolutional networks.
  """
  m, d = config.model, latent_dim(config)
  dtype = jnp.dtype(m.dtype)
  if config.mlvae.networks == "mlp":
    hidden = tuple(m.mlp_hidden)
    return {"encoder": MLPEncoder(latent_dim=d, hidden=hidden, dtype=dtype),
            "decoder": MLPDecoder(image_shape=tuple(image_shape), hidden=hidden[::-1], dtype=dtype)}
  check_image_shape(image_shape, {"encoder": m.encoder_features, "decoder": m.decoder_features})
  bn = dict(bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon, dtype=dtype, padding=m.conv_padding)
  return {"encoder": Encoder(latent_dim=d, features=tuple(m.encoder_features), dense=m.encoder_dense, **bn),
          "decoder": Decoder(image_shape=tuple(image_shape), features=tuple(m.decoder_features), **bn)}


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """``common.make_optimizers`` for the encoder and the decoder."""
  return common.make_optimizers(config, NETWORKS, steps_per_epoch)


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                       optimizers: dict[str, optax.GradientTransformation]) -> TrainState:
  """``common.create_train_state`` with the decoder taking [style, content] latents."""
  return common.create_train_state(rng, config, models, optimizers, latent_dim=latent_dim(config))


def product_of_gaussians(mu: jax.Array, logvar: jax.Array, axis: int = 1) -> tuple[jax.Array, jax.Array]:
  """The normalised product of diagonal Gaussians N(mu_i, exp(logvar_i)) along ``axis``.

  ML-VAE's accumulation of evidence (Bouchacourt et al. 2018, eq. 7): precisions add,
  ``Sigma_G^-1 = sum_i Sigma_i^-1``, and ``mu_G = Sigma_G sum_i Sigma_i^-1 mu_i``. Computed in
  log-variance space: ``logvar_G = -logsumexp_i(-logvar_i)`` and ``mu_G = sum_i w_i mu_i`` with
  ``w = softmax_i(-logvar_i)``, so no precision is formed and extreme log-variances
  (|logvar| of hundreds) neither overflow nor divide by zero.

  Args:
    mu: f32[..., n, ..., d] means of the n factors along ``axis``.
    logvar: f32, same shape: natural-log variances, any real value.
    axis: the axis of the factors (the group members).

  Returns:
    (mu_G, logvar_G): f32 with ``axis`` removed. One factor returns itself; n identical
    factors return (mu, logvar - log n).

  Raises:
    ValueError: ``mu`` and ``logvar`` differ in shape.
  """
  if mu.shape != logvar.shape:
    raise ValueError(f"mu {mu.shape} and logvar {logvar.shape} must have the same shape")
  weights = jax.nn.softmax(-logvar, axis=axis)
  return jnp.sum(weights * mu, axis=axis), -jax.nn.logsumexp(-logvar, axis=axis)


def _split(config, mu: jax.Array, logvar: jax.Array):
  s = config.mlvae.style_dim
  return (mu[..., :s], logvar[..., :s]), (mu[..., s:], logvar[..., s:])


def _apply(models, name: str, params: Params, batch_stats: Params, x: jax.Array, train: bool):
  """``models[name]`` on ``x``: (output, its BatchNorm statistics, updated when ``train``)."""
  stats = batch_stats[name]
  variables = {"params": params[name], **({"batch_stats": stats} if stats else {})}
  if stats and train:
    out, updates = models[name].apply(variables, x, train=True, mutable=["batch_stats"])
    return out, updates["batch_stats"]
  return models[name].apply(variables, x, train=train), stats


def _encode(models, config, params: Params, batch_stats: Params, x: jax.Array, train: bool):
  """Encodes f32[G, K, h, w, c]; returns ((style mu, logvar), (content mu, logvar)) each
  f32[G, K, dim], and the encoder's batch statistics."""
  (mu, logvar), stats = _apply(models, "encoder", params, batch_stats, x.reshape(-1, *x.shape[2:]), train)
  mu, logvar = mu.reshape(*x.shape[:2], -1), logvar.reshape(*x.shape[:2], -1)
  return _split(config, mu, logvar), stats


def _nll(models, config, x: jax.Array, raw: jax.Array) -> jax.Array:
  """f32[n] nats per image: Bernoulli (x in [-1, 1] mapped to [0, 1], ``raw`` the logits), or
  Gaussian of std ``exp(loss.pixel_log_scale)`` around the pixel means ``_to_image(raw)``."""
  if config.loss.llike == "bernoulli":
    return losses.bernoulli_nll((x + 1.0) * 0.5, raw)
  return losses.gaussian_nll(x, _to_image(models, raw), config.loss.pixel_log_scale)


def _to_image(models, raw: jax.Array) -> jax.Array:
  """Decoder output -> f32 pixel means in [-1, 1]: ``2 sigmoid(raw) - 1`` of the MLP's output (the
  Bernoulli mean, or with a pixel likelihood the port's sigmoid decoder on [0, 1] mapped to
  [-1, 1]), or the convolutional decoder's tanh output as it is."""
  return 2.0 * jax.nn.sigmoid(raw) - 1.0 if isinstance(models["decoder"], MLPDecoder) else raw


def compute_losses(models: dict[str, nn.Module], config: ml_collections.ConfigDict, params: Params,
                   batch_stats: Params, images: jax.Array, key: jax.Array,
                   train: bool = True) -> tuple[jax.Array, tuple[dict[str, jax.Array], Params]]:
  """The negative group ELBO per image of a batch of groups (Bouchacourt et al. 2018, eq. 6).

  Args:
    models: from ``build_models``.
    config: a validated config (``mlvae.style_dim``, ``loss.llike``, ``loss.pixel_log_scale``).
    params: {"encoder": tree, "decoder": tree}.
    batch_stats: {"encoder", "decoder": BatchNorm statistics ({} for the MLPs)}.
    images: f32[G, K, h, w, c] in [-1, 1]: G groups of K members.
    key: typed PRNG key: one style sample per image, one content sample per group.
    train: BatchNorm batch statistics (and their update) when True.

  Returns:
    (loss, (terms, new_batch_stats)): the f32 scalar minimised, the negative group ELBO
    divided by K and averaged over groups; f32 scalars ``llike`` (NLL nats per image),
    ``kl_style`` (per image), ``kl_content`` (per group, counted once per group),
    ``elbo`` (= -(llike + kl_style + kl_content / K), nats per image).
  """
  g, k = images.shape[:2]
  ((s_mu, s_logvar), (c_mu, c_logvar)), enc_stats = _encode(models, config, params, batch_stats, images, train)
  cg_mu, cg_logvar = product_of_gaussians(c_mu, c_logvar, axis=1)
  style_key, content_key = jax.random.split(key)
  s = s_mu + jnp.exp(0.5 * s_logvar) * jax.random.normal(style_key, s_mu.shape)
  c = cg_mu + jnp.exp(0.5 * cg_logvar) * jax.random.normal(content_key, cg_mu.shape)   # one c_G per group
  z = jnp.concatenate([s, jnp.broadcast_to(c[:, None], (g, k, c.shape[-1]))], axis=-1)
  raw, dec_stats = _apply(models, "decoder", params, batch_stats, z.reshape(g * k, -1), train)
  llike = jnp.mean(_nll(models, config, images.reshape(g * k, *images.shape[2:]), raw))
  kl_style = jnp.mean(losses.kl_divergence(s_mu.reshape(g * k, -1), s_logvar.reshape(g * k, -1)))
  kl_content = jnp.mean(losses.kl_divergence(cg_mu, cg_logvar))
  loss = llike + kl_style + kl_content / k
  terms = {"llike": llike, "kl_style": kl_style, "kl_content": kl_content, "elbo": -loss}
  return loss, (terms, {"encoder": enc_stats, "decoder": dec_stats})


def make_train_step(config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                    optimizers: dict[str, optax.GradientTransformation],
                    schedules: dict[str, optax.Schedule] | None = None) -> Callable:
  """The pure train step ``(state, batch) -> (state, metrics)``; jit it with donation.

  The batch is ``{"image": u8[G, K, h, w, c], ...}`` (other keys are ignored). One backward
  pass gives the encoder's and the decoder's gradients of the same loss; each network has its
  own optax optimizer, and a non-finite step is skipped whole (``common.apply_updates``).
  Metrics: the terms of ``compute_losses`` and ``loss`` under ``train/``, the non-finite
  counters and each network's learning rate.
  """
  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    images, key = images_to_float(batch["image"]), common.step_key(state)
    return common.minimise(
        state, lambda p: compute_losses(models, config, p, state.batch_stats, images, key), optimizers, schedules)

  return train_step


def encode(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array):
  """Per-image posteriors of u8[n, h, w, c] images (eval mode).

  Returns:
    ((style_mu, style_logvar), (content_mu, content_logvar)), each f32[n, dim].
  """
  (style, content), _ = _encode(models, config, state.params, state.batch_stats,
                                images_to_float(images)[:, None], train=False)
  return tuple(a[:, 0] for a in style), tuple(a[:, 0] for a in content)


def decode(models, state: TrainState, style: jax.Array, content: jax.Array) -> jax.Array:
  """f32[n, style_dim] and f32[n, content_dim] -> f32[n, h, w, c] images in [-1, 1] (pixel means)."""
  return sample(models, state, jnp.concatenate([style, content], -1))


def sample(models, state: TrainState, z: jax.Array) -> jax.Array:
  """f32[n, style + content] latents -> f32[n, h, w, c] images in [-1, 1] (pixel means); the
  train loop's image logger calls it with ``prior_sample`` draws."""
  raw, _ = _apply(models, "decoder", state.params, state.batch_stats, z, train=False)
  return _to_image(models, raw)


def reconstruct(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[n, h, w, c] -> f32[n, h, w, c] in [-1, 1]: Dec(style mu, content mu) of each image alone."""
  (mu, _), _ = _apply(models, "encoder", state.params, state.batch_stats, images_to_float(images), train=False)
  return sample(models, state, mu)


def prior_sample(config: ml_collections.ConfigDict, key: jax.Array, num: int) -> jax.Array:
  """f32[num, style_dim + content_dim] draws of p(s) p(c) = N(0, I)."""
  return jax.random.normal(key, (num, latent_dim(config)))


def eval_step(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array,
              key: jax.Array) -> dict[str, jax.Array]:
  """ELBO terms of held-out groups u8[G, K, h, w, c] (nats per image, eval-mode BatchNorm):
  ``llike``, ``kl_style``, ``kl_content`` (per group) and ``elbo``, as ``compute_losses``.
  K = 1 is the ELBO without group accumulation."""
  _, (terms, _) = compute_losses(models, config, state.params, state.batch_stats, images_to_float(images), key,
                                 train=False)
  return terms
