"""CCVAE (Joy, Schmon, Torr, Siddharth, Rainforth, ICLR 2021): capturing label characteristics in VAEs.

The latent is split ``z = [z_c | z_\\c]``: z_c has one block of ``ccvae.block_dim`` numbers
per binary label (one scalar in the official code), z_\\c holds the rest. Label i is predicted
from its own block only, by the diagonal classifier q(y|z_c); the prior of z_c is
conditional on the labels, p(z_c|y), with a learnable location and scale per label value;
p(z_\\c) = N(0, I) and p(y) = Bernoulli(1/2) per label (its log-density is a constant).

For a labelled example (x, y) the objective maximised is (paper eq. 4; official ``sup``)

  E_q(z|x)[ q(y|z_c) / q(y|x) * log( p(x|z) p(z|y) / (q(y|z_c) q(z|x)) ) ] + log q(y|x) + log p(y)

with q(y|x) = E_q(z|x)[q(y|z_c)] estimated from ``ccvae.num_samples`` = K samples of z_c by
log-mean-exp, and the expectation of log p(z|y) / q(z|x) taken in closed form as
-KL(q(z|x) || p(z|y)), as the official code does. As there, the weight's q(y|z_c) is computed
with z_c's gradient stopped (only the classifier learns from it), and q(y|x) keeps its
gradient. For an unlabelled x it is the ELBO with y ~ q(y|z_c) (official ``unsup``):

  E_q(z|x) q(y|z_c)[ log p(x|z) + log p(y) + log p(z|y) - log q(y|z_c) - log q(z|x) ].

The loss minimised is the negative objective averaged over the batch; a batch's examples are
labelled or not by ``batch["supervised"]`` (``data.supervision`` interleaves whole batches).
Both objectives share one encoder and one decoder pass, so one jitted step serves both
kinds of batch and no Python branch looks at the data. ``ccvae.objective = "classifier"`` is
the supervised-only baseline: the same encoder and classifier trained on -log q(y|x) alone.

Networks: the official 64x64 convolutional encoder and decoder with a Laplace(x_hat, 1)
likelihood on [0, 1] pixels (``ccvae.networks = "conv"``), or MLPs with a Bernoulli decoder
for 28x28 digits ("mlp").
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vaegan_jax import losses
from vaegan_jax.data import supervision
from vaegan_jax.methods import common
from vaegan_jax.methods.common import Params, TrainState, images_to_float, learning_rate_schedule
from vaegan_jax.models import CharacteristicClassifier, ConditionalPrior, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

NETWORKS = ("encoder", "decoder", "classifier", "prior")
train_dataset = supervision.ccvae_dataset  # what the train loop iterates over: interleaved batches
__all__ = ["NETWORKS", "TrainState", "build_models", "make_optimizers", "create_train_state", "learning_rate_schedule",
           "compute_losses", "make_train_step", "encode", "decode", "characteristic_probs", "classify", "conditional_latents", "sample", "reconstruct", "eval_step",
           "prior_sample", "prior_parameters", "walk_range", "train_dataset"]


def num_labels(config: ml_collections.ConfigDict) -> int:
  """L, the number of binary labels (``len(config.ccvae.labels)``)."""
  return len(config.ccvae.labels)


def characteristic_dim(config: ml_collections.ConfigDict) -> int:
  """The size of z_c: L labels x ``ccvae.block_dim``."""
  return num_labels(config) * config.ccvae.block_dim


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """{"encoder", "decoder", "classifier", "prior"}; MLPs or the official conv networks.

  Raises:
    ValueError: conv networks for images that are not 64x64.
  """
  m, dtype = config.model, jnp.dtype(config.model.dtype)
  if config.ccvae.networks == "conv":
    if tuple(image_shape[:2]) != (64, 64):
      raise ValueError(f"config.ccvae.networks='conv' is the official 64x64 architecture, but "
                       f"{config.data.name} has {tuple(image_shape)} images: set --config.ccvae.networks=mlp "
                       "--config.loss.llike=bernoulli")
    nets = {"encoder": ConvEncoder(latent_dim=m.latent_dim, dtype=dtype),
            "decoder": ConvDecoder(image_shape=tuple(image_shape), dtype=dtype)}
  else:
    hidden = tuple(m.mlp_hidden)
    nets = {"encoder": MLPEncoder(latent_dim=m.latent_dim, hidden=hidden, dtype=dtype),
            "decoder": MLPDecoder(image_shape=tuple(image_shape), hidden=hidden[::-1], dtype=dtype)}
  labels, block = num_labels(config), config.ccvae.block_dim
  return {**nets, "classifier": CharacteristicClassifier(labels, block), "prior": ConditionalPrior(labels, block)}


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """``common.make_optimizers`` for the four networks (``config.optim.<name>``)."""
  return common.make_optimizers(config, NETWORKS, steps_per_epoch)


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                       optimizers: dict[str, optax.GradientTransformation]) -> TrainState:
  """``common.create_train_state`` with the classifier taking z_c and the prior taking y."""
  inputs = {"classifier": jnp.zeros((2, characteristic_dim(config))), "prior": jnp.zeros((2, num_labels(config)))}
  return common.create_train_state(rng, config, models, optimizers, init_inputs=inputs)


def _encoder(models, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  return models["encoder"].apply({"params": params["encoder"]}, x, train=False)


def _classifier(models, params: Params, z_c: jax.Array) -> jax.Array:
  return models["classifier"].apply({"params": params["classifier"]}, z_c)


def _prior(models, config, params: Params, y: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mu, logvar) of p(z|y) = p(z_c|y) N(z_\\c; 0, I), each f32[batch, latent_dim]."""
  loc, scale = models["prior"].apply({"params": params["prior"]}, y)
  rest = config.model.latent_dim - loc.shape[-1]
  mu = jnp.concatenate([loc, jnp.zeros((loc.shape[0], rest))], -1)
  logvar = jnp.concatenate([2.0 * jnp.log(scale), jnp.zeros((loc.shape[0], rest))], -1)
  return mu, logvar


def _decoded_nll(config, x: jax.Array, raw: jax.Array) -> jax.Array:
  """-log p(x|z) per image: Bernoulli on MLP logits, or Laplace(x_hat, 1) on [0, 1] pixels (x in [-1, 1])."""
  target = (x + 1.0) * 0.5
  if config.loss.llike == "bernoulli":
    return losses.bernoulli_nll(target, raw)
  return losses.laplace_nll(target, raw, 1.0)


def _to_image(models, raw: jax.Array) -> jax.Array:
  """Decoder output -> pixel means in [-1, 1] (sigmoid of MLP logits, or the conv decoder's [0, 1] means)."""
  return 2.0 * (jax.nn.sigmoid(raw) if isinstance(models["decoder"], MLPDecoder) else raw) - 1.0


def compute_losses(models: dict[str, nn.Module], config: ml_collections.ConfigDict, params: Params,
                   batch_stats: Params, images: jax.Array, labels: jax.Array, supervised: jax.Array,
                   key: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], Params]]:
  """The negative CCVAE objective of a batch (Joy et al. 2021, eqs. 4 and 5; see the module docstring).

  Args:
    models: from ``build_models``.
    config: a validated config (``ccvae.*``, ``loss.llike``, ``model.latent_dim``).
    params: {"encoder", "decoder", "classifier", "prior": parameter trees}.
    batch_stats: the state's (empty: these networks have no BatchNorm); returned unchanged.
    images: f32[b, h, w, c] in [-1, 1].
    labels: f32[b, L] in {0, 1}; ignored where ``supervised`` is False.
    supervised: bool[b]: which examples use the supervised objective.
    key: typed PRNG key (z, the K samples of z_c, and y of the unsupervised examples).

  Returns:
    (loss, (terms, batch_stats)): the f32 scalar minimised (the negative objective, nats per
    image, averaged over the batch) and f32 scalars ``elbo`` (= -loss), ``llike`` (-log p(x|z)),
    ``kl`` (KL(q(z|x) || p(z|y)), y given or sampled), ``log_qyx`` (the estimate of
    log q(y|x) averaged over the supervised examples; 0 with none) and ``supervised`` (the
    batch's labelled fraction).
  """
  b, cd = images.shape[0], characteristic_dim(config)
  z_key, k_key, y_key = jax.random.split(key, 3)
  mu, logvar = _encoder(models, params, images)
  std = jnp.exp(0.5 * logvar)
  z = mu + std * jax.random.normal(z_key, mu.shape)
  z_c = z[:, :cd]
  logits = _classifier(models, params, z_c)
  # log q(y|x) = log mean_k q(y|z_c^k), z_c^k ~ q(z_c|x): K samples through the classifier only
  z_ck = mu[:, :cd] + std[:, :cd] * jax.random.normal(k_key, (config.ccvae.num_samples, b, cd))
  logits_k = _classifier(models, params, z_ck.reshape(-1, cd)).reshape(config.ccvae.num_samples, b, -1)
  log_qyx = losses.log_mean_exp(losses.bernoulli_log_prob(labels[None], logits_k), axis=0)
  mask = supervised.astype(jnp.float32)
  terms = {"log_qyx": jnp.sum(mask * log_qyx) / jnp.maximum(jnp.sum(mask), 1.0), "supervised": jnp.mean(mask)}
  if config.ccvae.objective == "classifier":       # the supervised-only baseline
    loss = -jnp.sum(mask * log_qyx) / jnp.maximum(jnp.sum(mask), 1.0)
    return loss, ({"loss_classifier": loss, **terms}, batch_stats)
  raw = models["decoder"].apply({"params": params["decoder"]}, z, train=False)
  log_pxz = -_decoded_nll(config, images, raw)
  log_py = -num_labels(config) * jnp.log(2.0)
  # supervised: the weight q(y|z_c) / q(y|x) with z_c's gradient stopped in q(y|z_c)
  log_qyzc = losses.bernoulli_log_prob(labels, logits)
  log_qyzc_stopped = losses.bernoulli_log_prob(labels, _classifier(models, params, jax.lax.stop_gradient(z_c)))
  kl_sup = losses.gaussian_kl(mu, logvar, *_prior(models, config, params, labels))
  weight = jnp.exp(log_qyzc_stopped - log_qyx)
  sup = weight * (log_pxz - kl_sup - log_qyzc) + log_qyx + log_py
  # unsupervised: y ~ q(y|z_c), no gradient through the draw
  y = jax.lax.stop_gradient(jax.random.bernoulli(y_key, jax.nn.sigmoid(logits)).astype(jnp.float32))
  kl_unsup = losses.gaussian_kl(mu, logvar, *_prior(models, config, params, y))
  unsup = log_pxz - kl_unsup - losses.bernoulli_log_prob(y, logits) + log_py
  elbo = jnp.mean(jnp.where(supervised, sup, unsup))
  terms.update(elbo=elbo, llike=-jnp.mean(log_pxz), kl=jnp.mean(jnp.where(supervised, kl_sup, kl_unsup)))
  return -elbo, (terms, batch_stats)


def make_train_step(config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                    optimizers: dict[str, optax.GradientTransformation],
                    schedules: dict[str, optax.Schedule] | None = None) -> Callable:
  """The pure train step ``(state, batch) -> (state, metrics)``; jit it with donation.

  The batch is ``{"image": u8[b, h, w, c], "label": f32[b, L], "supervised": bool[b]}``. One
  backward pass gives the four networks' gradients of the same loss; each has its own optax
  optimizer, and a non-finite step is skipped whole. Metrics: the terms of
  ``compute_losses`` and ``loss`` under ``train/``, the non-finite counters, the learning rates.
  """
  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    images, key = images_to_float(batch["image"]), common.step_key(state)
    labels, supervised = batch["label"].astype(jnp.float32), batch["supervised"]
    return common.minimise(
        state, lambda p: compute_losses(models, config, p, state.batch_stats, images, labels, supervised, key),
        optimizers, schedules)

  return train_step


def encode(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array):  # pylint: disable=unused-argument
  """u8[n, h, w, c] -> (mu, logvar) of q(z|x), each f32[n, latent_dim]; z_c is ``[:, :L * d]``."""
  return _encoder(models, state.params, images_to_float(images))


def decode(models, state: TrainState, z: jax.Array) -> jax.Array:
  """f32[n, latent_dim] -> f32[n, h, w, c] pixel means in [-1, 1]."""
  return _to_image(models, models["decoder"].apply({"params": state.params["decoder"]}, z, train=False))


def characteristic_probs(models, state: TrainState, z_c: jax.Array) -> jax.Array:
  """q(y_i = 1 | z_c): f32[n, L * d] characteristic latents -> f32[n, L] probabilities in (0, 1)."""
  return jax.nn.sigmoid(_classifier(models, state.params, z_c))


def classify(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array) -> jax.Array:
  """f32[n, L] probabilities q(y_i = 1 | z_c = posterior mean) of u8[n, h, w, c] images (the
  official code's accuracy uses the posterior mean too)."""
  mu, _ = encode(models, config, state, images)
  return characteristic_probs(models, state, mu[:, :characteristic_dim(config)])


def reconstruct(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[n, h, w, c] -> f32[n, h, w, c] in [-1, 1]: Dec(mu)."""
  mu, _ = _encoder(models, state.params, images_to_float(images))
  return decode(models, state, mu)


def prior_sample(config: ml_collections.ConfigDict, key: jax.Array, num: int) -> jax.Array:
  """f32[num, latent_dim + L] draws for ``sample``: standard normal noise, then uniforms that
  ``sample`` turns into y ~ Bernoulli(1/2). (The prior of z_c is learnt, so the draws are
  mapped through it by ``sample``, which sees the state.)"""
  noise_key, y_key = jax.random.split(key)
  return jnp.concatenate([jax.random.normal(noise_key, (num, config.model.latent_dim)),
                          jax.random.uniform(y_key, (num, num_labels(config)))], -1)


def conditional_latents(models, state: TrainState, y: jax.Array, noise: jax.Array) -> jax.Array:
  """z ~ p(z|y) from standard normal noise: z_c = loc(y) + scale(y) eps_c, z_\\c = eps_\\c.

  Args:
    y: f32[n, L] labels in {0, 1}.
    noise: f32[n, latent_dim] standard normal draws.

  Returns:
    f32[n, latent_dim].
  """
  loc, scale = models["prior"].apply({"params": state.params["prior"]}, y)
  cd = loc.shape[-1]
  return jnp.concatenate([loc + scale * noise[:, :cd], noise[:, cd:]], -1)


def sample(models, state: TrainState, draws: jax.Array) -> jax.Array:
  """Decodes ``prior_sample`` draws [eps | u]: y = (u < 1/2), z = ``conditional_latents(y, eps)``.

  Returns:
    f32[n, h, w, c] pixel means in [-1, 1].
  """
  labels = models["prior"].num_labels
  y = (draws[:, -labels:] < 0.5).astype(jnp.float32)
  return decode(models, state, conditional_latents(models, state, y, draws[:, :-labels]))


def eval_step(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array,
              key: jax.Array) -> dict[str, jax.Array]:
  """The unsupervised objective's terms of u8[n, h, w, c] held-out images (no labels used):
  ``elbo``, ``llike`` and ``kl`` in nats per image, as ``compute_losses``."""
  n = images.shape[0]
  _, (terms, _) = compute_losses(models, config, state.params, state.batch_stats, images_to_float(images),
                                 jnp.zeros((n, num_labels(config))), jnp.zeros((n,), bool), key)
  return {k: terms[k] for k in ("elbo", "llike", "kl") if k in terms}


def prior_parameters(state: TrainState) -> dict[str, np.ndarray]:
  """The conditional prior's parameters on the host: ``loc_true``, ``loc_false``, ``scale_true``,
  ``scale_false`` (softplus applied, >= 1e-3), each f32[L, d]."""
  p = jax.device_get(state.params["prior"])
  scale = lambda raw: np.maximum(np.logaddexp(0.0, np.asarray(raw, np.float64)), 1e-3).astype(np.float32)  # noqa: E731
  return {"loc_true": np.asarray(p["loc_true"]), "loc_false": np.asarray(p["loc_false"]),
          "scale_true": scale(p["scale_true"]), "scale_false": scale(p["scale_false"])}


def walk_range(prior: dict[str, np.ndarray], label: int, steps: int, widths: float = 2.0) -> np.ndarray:
  """Points of label ``label``'s block from beyond p(z_c|y=0) to beyond p(z_c|y=1).

  The walk runs from ``loc_false - widths * scale_false`` to ``loc_true + widths * scale_true``
  (signs follow the direction from loc_false to loc_true), all read from this label's own
  prior parameters: the official code's traversal took its limits from the wrong label's, so
  its walks left some labels' ranges.

  Args:
    prior: from ``prior_parameters``.
    label: the label's index, 0 <= label < L.
    steps: points on the walk, >= 2.
    widths: how many prior standard deviations past each location the walk extends.

  Returns:
    f32[steps, d] values of the label's block.

  Raises:
    ValueError: a label out of range or fewer than two steps.
  """
  num = prior["loc_true"].shape[0]
  if not 0 <= label < num or steps < 2:
    raise ValueError(f"walk_range needs 0 <= label < {num} and steps >= 2, got label {label}, steps {steps}")
  lo, hi = prior["loc_false"][label], prior["loc_true"][label]
  direction = np.where(hi >= lo, 1.0, -1.0)
  start = lo - direction * widths * prior["scale_false"][label]
  end = hi + direction * widths * prior["scale_true"][label]
  return np.linspace(start, end, steps).astype(np.float32)
