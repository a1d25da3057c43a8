"""Adversarial autoencoders (Makhzani et al. 2015, arXiv 1511.05644): aae and semi_aae.

A deterministic encoder maps x to a code; instead of a KL term, a latent discriminator D_z
pushes the codes towards a prior p(z) (``config.aae.prior``: N(0, I) or a mixture of 10
Gaussians; with ``aae.condition_on_label`` the one-hot label goes into D_z, so class k lands
on component k). One jitted step runs the paper's phases in order, each updating only its
networks with its own optax optimizer (``config.optim.<phase>``):

==================  =====================================================  ===========================
phase               loss                                                   updates (optimizer)
==================  =====================================================  ===========================
reconstruction      Bernoulli NLL of x under Dec(Enc(x))                   encoder, decoder
regularisation, D   BCE(D_z(z_p), 1) + BCE(D_z(Enc(x)), 0) (+ the same    discriminator
                    for D_y: one-hot y_p ~ Cat(1/K) against q(y|x))
regularisation, G   BCE(D_z(Enc(x)), 1) (+ BCE(D_y(q(y|x)), 1))            encoder (generator)
classification      cross-entropy of q(y|x_l) on the labelled subset       encoder (classifier)
                    (each x_l moved, rotated and scaled: ``aae.labelled_*``)
                    + w(step) KL(q(y|x) || q(y|x deformed)) on the
                    unlabelled batch (``aae.consistency_weight``)
==================  =====================================================  ===========================

``semi_aae`` is the semi-supervised AAE (paper sec. 5): the encoder also has a categorical
head q(y|x) (softmax of 10 logits), the decoder sees [y, z], D_y matches y to one-hot draws,
and the classification phase only runs there. With ``aae.y_minibatch_mean`` (on in
``configs/semi_aae_mnist.py``) D_y sees each y beside its batch's mean, which keeps q(y|x)
from collapsing onto a few classes (``models.aae.LatentDiscriminators``). Each phase sees
the parameters the previous phases left (the paper's alternation, within one step). Nothing branches on device values:
the step's losses and gradients are checked for finiteness once and a bad step changes
nothing but the counters (``common.commit``).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vaegan_jax import losses, priors
from vaegan_jax.data import labelled
from vaegan_jax.methods import common
# TrainState and learning_rate_schedule are part of every method module's interface.
from vaegan_jax.methods.common import Params, TrainState, images_to_float, learning_rate_schedule  # noqa: F401
from vaegan_jax.models import AAEEncoder, LatentDiscriminators, MLPDecoder

NETWORKS = ("encoder", "decoder", "discriminator")
train_dataset = labelled.aae_dataset  # what the train loop iterates over: images, labels (+ labelled subset)


def num_classes(config: ml_collections.ConfigDict) -> int:
  """Size of the categorical head y: ``aae.num_components`` for semi_aae, else 0."""
  return config.aae.num_components if config.method == "semi_aae" else 0


def code_dim(config: ml_collections.ConfigDict) -> int:
  """Width of the decoder's input: z, or [y, z] for semi_aae."""
  return config.model.latent_dim + num_classes(config)


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """{"encoder": AAEEncoder, "decoder": MLPDecoder, "discriminator": LatentDiscriminators},
  each with ``config.model.mlp_hidden`` ReLU layers (2 x 1000 in the paper)."""
  dtype = jnp.dtype(config.model.dtype)
  hidden = tuple(config.model.mlp_hidden)
  k = num_classes(config)
  return {"encoder": AAEEncoder(latent_dim=config.model.latent_dim, hidden=hidden, num_classes=k,
                                dropout=config.aae.encoder_dropout, dtype=dtype),
          "decoder": MLPDecoder(image_shape=tuple(image_shape), hidden=hidden[::-1], dtype=dtype),
          "discriminator": LatentDiscriminators(hidden=hidden, num_classes=k,
                                                y_minibatch_mean=config.aae.y_minibatch_mean, dtype=dtype)}


def optimizer_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The phases' optimizers, each a ``config.optim`` section: encoder and decoder (reconstruction),
  discriminator, generator (the encoder's adversarial phase), classifier (semi_aae only)."""
  return NETWORKS + ("generator",) + (("classifier",) if config.method == "semi_aae" else ())


def make_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, optax.GradientTransformation]:
  """``common.make_optimizers`` for every phase of ``optimizer_names``."""
  return common.make_optimizers(config, optimizer_names(config), steps_per_epoch)


# The network each optimizer updates.
_TARGET = {"encoder": "encoder", "decoder": "decoder", "discriminator": "discriminator",
           "generator": "encoder", "classifier": "encoder"}


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                       optimizers: dict[str, optax.GradientTransformation]) -> TrainState:
  """Initialises the three networks and the optimizer state of every phase (step 0).

  Args:
    rng: a typed PRNG key (``jax.random.key(seed)``).
    config, models, optimizers: from ``build_models`` and ``make_optimizers``.
  """
  init_key, run_key = jax.random.split(rng)
  k, d = num_classes(config), config.model.latent_dim
  image = jnp.zeros((2, *models["decoder"].image_shape), jnp.float32)
  z_input = jnp.zeros((2, d + (config.aae.num_components if config.aae.condition_on_label else 0)), jnp.float32)
  inputs = {"encoder": (image,), "decoder": (jnp.zeros((2, code_dim(config)), jnp.float32),),
            "discriminator": (z_input, jnp.zeros((2, k), jnp.float32) if k else None)}
  params = {name: models[name].init(jax.random.fold_in(init_key, i), *inputs[name], train=False)["params"]
            for i, name in enumerate(NETWORKS)}
  if config.aae.init_std:
    params = gaussian_init(params, jax.random.fold_in(init_key, len(NETWORKS)), config.aae.init_std)
  opt_state = {name: tx.init(params[_TARGET[name]]) for name, tx in optimizers.items()}
  return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(run_key), params=params,
                    batch_stats={name: {} for name in NETWORKS}, opt_state=opt_state,
                    nonfinite_steps=jnp.zeros((), jnp.int32), nonfinite_streak=jnp.zeros((), jnp.int32))


def gaussian_init(params: Params, key: jax.Array, std: float) -> Params:
  """Every dense kernel redrawn from N(0, std^2) and every bias set to 0: the initialisation of
  Makhzani et al. 2015 (appendix: std 0.01), with which their SGD rates are stable here.

  Args:
    params: parameter trees whose leaves are named ``kernel`` or ``bias`` (the AAE's networks).
    key: a typed PRNG key; std: > 0.

  Returns:
    Trees of the same structure, shapes and dtypes.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  new = [std * jax.random.normal(k, leaf.shape, leaf.dtype) if getattr(path[-1], "key", None) == "kernel"
         else jnp.zeros_like(leaf) for (path, leaf), k in zip(leaves, keys)]
  return jax.tree_util.tree_unflatten(treedef, new)


def _to_unit(x: jax.Array) -> jax.Array:
  return (x + 1.0) * 0.5


def encoder_outputs(models, params: Params, x: jax.Array,
                    key: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(code, z, y_logits) of f32 images in [-1, 1]: ``code`` is the decoder's input, z for the
  unsupervised AAE, [softmax(y_logits), z] for semi_aae. With a PRNG ``key`` the encoder runs
  in training mode (its dropout, ``aae.encoder_dropout``, on); without, deterministically."""
  rngs = {"dropout": key} if key is not None else None
  z, y_logits = models["encoder"].apply({"params": params["encoder"]}, x, train=key is not None, rngs=rngs)
  code = jnp.concatenate([jax.nn.softmax(y_logits), z], axis=-1) if y_logits.shape[-1] else z
  return code, z, y_logits


def _decode(models, params: Params, code: jax.Array) -> jax.Array:
  return models["decoder"].apply({"params": params["decoder"]}, code, train=True)


def _discriminate(models, config, params: Params, z: jax.Array, labels: jax.Array, y: jax.Array | None):
  """Logits of D_z (on [z, one-hot label] when conditioned) and D_y (on y)."""
  if config.aae.condition_on_label:
    z = jnp.concatenate([z, jax.nn.one_hot(labels, config.aae.num_components, dtype=z.dtype)], axis=-1)
  return models["discriminator"].apply({"params": params["discriminator"]}, z, y, train=True)


def prior_draws(config: ml_collections.ConfigDict, key: jax.Array, labels: jax.Array) -> jax.Array:
  """f32[batch, latent_dim] draws of p(z): N(0, I), or the mixture with component ``labels`` when
  conditioned on the label (else uniform components)."""
  num, d = labels.shape[0], config.model.latent_dim
  if config.aae.prior == "gaussian":
    return priors.gaussian(key, num, d)
  component_key, draw_key = jax.random.split(key)
  if not config.aae.condition_on_label:
    labels = jax.random.randint(component_key, (num,), 0, config.aae.num_components)
  return priors.mixture(draw_key, labels, d, config.aae.num_components)


def reconstruction_loss(models, params: Params, x: jax.Array,
                        dropout_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Reconstruction phase: mean Bernoulli NLL (nats per image) of x under Dec(Enc(x)).

  Args:
    params: {"encoder", "decoder", ...} trees.
    x: f32[batch, h, w, c] images in [-1, 1] (their targets are (x + 1) / 2 in [0, 1]).
    dropout_key: the encoder's dropout key in training (``encoder_outputs``); None: deterministic.
  """
  code, _, _ = encoder_outputs(models, params, x, dropout_key)
  nll = jnp.mean(losses.bernoulli_nll(_to_unit(x), _decode(models, params, code)))
  return nll, {"reconstruction": nll}


def discriminator_loss(models, config, params: Params, x: jax.Array, labels: jax.Array,
                       key: jax.Array, dropout_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Regularisation phase, discriminator part: ``BCE(D(prior draw), 1) + BCE(D(Enc(x)), 0)``,
  batch means in nats, for D_z and (semi_aae) D_y; the encoder's output is a constant here.

  Args:
    params: all trees; only ``params["discriminator"]`` should be differentiated.
    x: f32[batch, h, w, c] in [-1, 1]; labels: i32[batch] classes (used when conditioned).
    key: typed PRNG key for the prior draws; dropout_key: as for ``reconstruction_loss``.

  Returns:
    (loss, terms): terms ``d_z_loss``, ``d_z_real`` / ``d_z_fake`` (mean sigmoid outputs on
    prior draws and codes), and the same for D_y in semi_aae.
  """
  _, z, y_logits = jax.tree.map(jax.lax.stop_gradient, encoder_outputs(models, params, x, dropout_key))
  z_key, y_key = jax.random.split(key)
  z_prior = prior_draws(config, z_key, labels)
  k = y_logits.shape[-1]
  y_prior = priors.categorical(y_key, x.shape[0], k) if k else None
  y_fake = jax.nn.softmax(y_logits) if k else None
  real_z, real_y = _discriminate(models, config, params, z_prior, labels, y_prior)
  fake_z, fake_y = _discriminate(models, config, params, z, labels, y_fake)
  loss, _, _ = losses.gan_loss(real_z, (fake_z,))
  terms = {"d_z_loss": loss, "d_z_real": jnp.mean(jax.nn.sigmoid(real_z)), "d_z_fake": jnp.mean(jax.nn.sigmoid(fake_z))}
  if k:
    loss_y, _, _ = losses.gan_loss(real_y, (fake_y,))
    terms.update({"d_y_loss": loss_y, "d_y_real": jnp.mean(jax.nn.sigmoid(real_y)),
                  "d_y_fake": jnp.mean(jax.nn.sigmoid(fake_y))})
    loss = loss + loss_y
  return loss, terms


def generator_loss(models, config, params: Params, x: jax.Array, labels: jax.Array,
                   dropout_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Regularisation phase, generator part: the encoder fools the discriminators,
  ``BCE(D_z(Enc(x)), 1)`` (+ ``BCE(D_y(q(y|x)), 1)``), batch means in nats (non-saturating)."""
  _, z, y_logits = encoder_outputs(models, params, x, dropout_key)
  k = y_logits.shape[-1]
  fake_z, fake_y = _discriminate(models, config, params, z, labels, jax.nn.softmax(y_logits) if k else None)
  loss = losses.generator_adversarial_loss((fake_z,), "non_saturating")
  terms = {"g_z_loss": loss}
  if k:
    terms["g_y_loss"] = losses.generator_adversarial_loss((fake_y,), "non_saturating")
    loss = loss + terms["g_y_loss"]
  return loss, terms


def classification_loss(models, params: Params, x: jax.Array, labels: jax.Array,
                        dropout_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Semi-supervised phase: mean cross-entropy (nats) of q(y|x) against the labels of the
  labelled subset. x: f32[batch, h, w, c] in [-1, 1]; labels: i32[batch]."""
  _, _, y_logits = encoder_outputs(models, params, x, dropout_key)
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(y_logits, labels))
  accuracy = jnp.mean((jnp.argmax(y_logits, -1) == labels).astype(jnp.float32))
  return ce, {"classification": ce, "labelled_accuracy": accuracy}


def consistency_loss(models, params: Params, x: jax.Array, x_deformed: jax.Array,
                     dropout_key: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Consistency of q(y|x) on unlabelled digits: mean KL(q(y|x) || q(y|x_deformed)) in nats (>= 0).

  The target q(y|x) comes from the undeformed x through the deterministic encoder and is held
  fixed (no gradient); the prediction from a deformed copy, with dropout when ``dropout_key`` is
  given. The unsupervised data augmentation objective (Xie et al. 2020, "Unsupervised data
  augmentation for consistency training", eq. 1 and sec. 3.1's stop-gradient target); not in
  Makhzani et al. 2015, where only D_y and the labelled cross-entropy shape q(y|x).

  Args:
    x: f32[batch, h, w, c] unlabelled images in [-1, 1]; x_deformed: the same images deformed
      (``random_deformations``), same shape.
    dropout_key: a typed PRNG key for the encoder's dropout on ``x_deformed``, or None.

  Returns:
    (kl, {"consistency": kl}): f32 scalar, the batch mean over examples, summed over classes.
  """
  _, _, target_logits = encoder_outputs(models, params, x)
  target_log_p = jax.nn.log_softmax(jax.lax.stop_gradient(target_logits))
  _, _, logits = encoder_outputs(models, params, x_deformed, dropout_key)
  kl = jnp.mean(jnp.sum(jnp.exp(target_log_p) * (target_log_p - jax.nn.log_softmax(logits)), axis=-1))
  return kl, {"consistency": kl}


def consistency_rampup(step: jax.Array, rampup_steps: int) -> jax.Array:
  """The consistency weight's ramp: exp(-5 (1 - t)^2) with t = min(step / rampup_steps, 1),
  from exp(-5) = 0.0067 at step 0 to 1 at ``rampup_steps`` and after (Laine & Aila 2017,
  "Temporal ensembling for semi-supervised learning", sec. 3.1 and appendix A); 1 throughout
  when ``rampup_steps`` is 0. step: i32 or f32 scalar (the train step); returns f32 in (0, 1]."""
  if rampup_steps == 0:
    return jnp.ones((), jnp.float32)
  t = jnp.clip(jnp.asarray(step, jnp.float32) / rampup_steps, 0.0, 1.0)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)


def warp(x: jax.Array, offsets: jax.Array, angles: jax.Array, scales: jax.Array) -> jax.Array:
  """Resamples each image under its own similarity transform about the image centre.

  Output pixel v (row, column) takes the bilinear interpolation of the input at
  u = R(-angle) (v - centre) / scale + centre + offset, so the content is rotated by ``angle``
  (counter-clockwise on screen for a positive angle), magnified by ``scale`` and moved by
  -``offset``. With angle 0 and scale 1 an integer offset is an exact whole-pixel translation.

  Args:
    x: f32[batch, h, w, c] images in [-1, 1].
    offsets: f32 or i32[batch, 2] sampling offsets (row, column) in pixels.
    angles: f32[batch] rotations in radians; scales: f32[batch] magnifications (> 0).

  Returns:
    f32[batch, h, w, c]; pixels sampled from outside the input are -1 (black, MNIST's background).
  """
  _, h, w, _ = x.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - (h - 1) / 2,
                            jnp.arange(w, dtype=jnp.float32) - (w - 1) / 2, indexing="ij")

  def one(image, offset, angle, scale):
    cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
    u = (cos * rows + sin * cols + (h - 1) / 2 + offset[0], -sin * rows + cos * cols + (w - 1) / 2 + offset[1])
    channel = lambda plane: jax.scipy.ndimage.map_coordinates(plane, u, order=1, mode="constant", cval=-1.0)  # noqa: E731
    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(one)(x, offsets.astype(jnp.float32), angles, scales)


def random_deformations(key: jax.Array, x: jax.Array, max_shift: int, max_rotation: float = 0.0,
                        max_scale: float = 0.0) -> jax.Array:
  """The semi-supervised AAE's augmentation of the labelled digits (``aae.labelled_shift``,
  ``labelled_rotation``, ``labelled_scale``): each image translated, rotated and scaled by its own
  random draw (``warp``). Without it the cross-entropy on 100 labelled digits reaches 0 within a
  few hundred steps and the encoder learns them as exceptions (docs/models/aae.md, "The
  semi-supervised gap"). Not in Makhzani et al. 2015; the affine part of the classic MNIST
  augmentation (Simard et al. 2003, "Best practices for convolutional neural networks applied to
  visual document analysis", sec. 2; their elastic distortions are left out: no better here).

  Args:
    key: a typed PRNG key.
    x: f32[batch, h, w, c] images in [-1, 1].
    max_shift: the largest translation per axis, in whole pixels (>= 0, < h and w); offsets are
      uniform on the integers in [-max_shift, max_shift].
    max_rotation: the largest rotation, in degrees; angles are uniform on [-max_rotation, max_rotation].
    max_scale: scales are uniform on [1 - max_scale, 1 + max_scale] (0 <= max_scale < 1).

  Returns:
    f32[batch, h, w, c]: the deformed images, uncovered pixels -1 (black).
  """
  b = x.shape[0]
  offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1) - max_shift
  angles = jax.random.uniform(jax.random.fold_in(key, 1), (b,), minval=-1.0, maxval=1.0) * jnp.deg2rad(max_rotation)
  scales = 1.0 + jax.random.uniform(jax.random.fold_in(key, 2), (b,), minval=-1.0, maxval=1.0) * max_scale
  return warp(x, offsets, angles, scales)


def _phase(loss_fn: Callable, phase_optimizers: tuple[str, ...], optimizers, params: Params, opt_state: Params):
  """One phase: differentiates ``loss_fn(params)`` with respect to the networks that
  ``phase_optimizers`` update (``_TARGET``) only, and applies those optimizers.

  Returns:
    (params, opt_state, loss, terms, grads): the trees after the phase, its loss and terms,
    and the gradients {network: tree} that it applied.
  """
  networks = {name: _TARGET[name] for name in phase_optimizers}
  (loss, terms), grads = jax.value_and_grad(
      lambda trees: loss_fn({**params, **trees}), has_aux=True)({n: params[n] for n in networks.values()})
  params, opt_state = dict(params), dict(opt_state)
  for name, network in networks.items():
    params[network], opt_state[name] = common.optimizer_step(optimizers[name], grads[network], opt_state[name],
                                                             params[network])
  return params, opt_state, loss, terms, grads


def make_train_step(config: ml_collections.ConfigDict, models: dict[str, nn.Module],
                    optimizers: dict[str, optax.GradientTransformation],
                    schedules: dict[str, optax.Schedule] | None = None) -> Callable:
  """The pure train step ``(state, batch) -> (state, metrics)``; jit it with donation.

  The batch is ``{"image": u8[b, h, w, c], "label": i64[b]}`` plus, for semi_aae,
  ``"labelled_image"`` and ``"labelled_label"`` (see ``data.labelled.aae_dataset``; the labelled
  images are deformed in the step by ``random_deformations``, keyed by the step). Metrics
  under ``train/``: ``reconstruction``, the discriminator and generator terms, for semi_aae
  ``classification`` and ``labelled_accuracy`` (and with ``aae.consistency_weight`` the
  ``consistency`` KL and its ramped ``consistency_weight``), the non-finite counters, each
  optimizer's learning rate.
  """
  semi = config.method == "semi_aae"

  def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    key = common.step_key(state)   # the prior draws'; each phase's dropout key from its fold-in
    drop = list(jax.random.split(jax.random.fold_in(key, 1), 4)) if config.aae.encoder_dropout else [None] * 4
    x = images_to_float(batch["image"])
    labels = batch["label"].astype(jnp.int32)
    params, opt_state = state.params, state.opt_state
    checked, terms = [], {}

    def run(loss_fn, phase_optimizers):
      nonlocal params, opt_state
      params, opt_state, loss, phase_terms, grads = _phase(loss_fn, phase_optimizers, optimizers, params, opt_state)
      checked.append((loss, grads))
      terms.update(phase_terms)

    # 1. Reconstruction: encoder and decoder, each with its own optimizer, from the same loss.
    run(lambda p: reconstruction_loss(models, p, x, drop[0]), ("encoder", "decoder"))
    # 2. Regularisation: the discriminators, then the encoder as their generator.
    run(lambda p: discriminator_loss(models, config, p, x, labels, key, drop[1]), ("discriminator",))
    run(lambda p: generator_loss(models, config, p, x, labels, drop[2]), ("generator",))
    # 3. Semi-supervised classification on the labelled subset.
    if semi:
      xl = images_to_float(batch["labelled_image"])
      a = config.aae
      if a.labelled_shift or a.labelled_rotation or a.labelled_scale:
        xl = random_deformations(jax.random.fold_in(key, 2), xl, a.labelled_shift, a.labelled_rotation, a.labelled_scale)
      yl = batch["labelled_label"].astype(jnp.int32)
      if a.consistency_weight:
        # The unlabelled batch deformed as the labelled digits are; its q(y|x) held to the undeformed one's.
        xu = random_deformations(jax.random.fold_in(key, 3), x, a.labelled_shift, a.labelled_rotation, a.labelled_scale)
        weight = a.consistency_weight * consistency_rampup(state.step, a.consistency_rampup_steps)
        drop_u = None if drop[3] is None else jax.random.fold_in(drop[3], 1)

        def labelled_loss(p):
          ce, ce_terms = classification_loss(models, p, xl, yl, drop[3])
          kl, kl_terms = consistency_loss(models, p, x, xu, drop_u)
          return ce + weight * kl, {**ce_terms, **kl_terms, "consistency_weight": weight}
      else:
        labelled_loss = lambda p: classification_loss(models, p, xl, yl, drop[3])  # noqa: E731
      run(labelled_loss, ("classifier",))
    new_state, health = common.commit(state, common.all_finite(checked), params, opt_state, state.batch_stats)
    metrics = {f"train/{k}": v for k, v in terms.items()}
    metrics.update(health)
    metrics.update(common.learning_rates(schedules, state.step))
    return new_state, metrics

  return train_step


def encode(models, state: TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """u8[batch, h, w, c] -> (code, y_logits): f32[batch, code_dim] decoder inputs (z, or
  [softmax y, z] for semi_aae) and f32[batch, K] class logits (K = 0 without a y head)."""
  code, _, y_logits = encoder_outputs(models, state.params, images_to_float(images))
  return code, y_logits


def sample(models, state: TrainState, code: jax.Array) -> jax.Array:
  """f32[batch, code_dim] codes -> f32[batch, h, w, c] Bernoulli means mapped to [-1, 1]."""
  return 2.0 * jax.nn.sigmoid(_decode(models, state.params, code)) - 1.0


def reconstruct(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] -> f32[batch, h, w, c] in [-1, 1]: the Bernoulli means of Dec(Enc(x))."""
  return sample(models, state, encode(models, state, images)[0])


def prior_sample(config: ml_collections.ConfigDict, key: jax.Array, num: int,
                 labels: jax.Array | None = None) -> jax.Array:
  """f32[num, code_dim] decoder inputs drawn from the prior: z ~ p(z), or [one-hot y ~ Cat(1/K),
  z ~ N(0, I)] for semi_aae.

  Args:
    labels: optional i32[num] classes in [0, aae.num_components): the mixture component of
      each draw under the label-conditioned prior, and y in semi_aae; default uniform.
  """
  class_key, z_key = jax.random.split(key)
  if labels is None:
    labels = jax.random.randint(class_key, (num,), 0, config.aae.num_components)
  z = prior_draws(config, z_key, labels)
  if config.method != "semi_aae":
    return z
  return jnp.concatenate([jax.nn.one_hot(labels, num_classes(config), dtype=jnp.float32), z], axis=-1)


def reconstruction_error(models, state: TrainState, images: jax.Array) -> jax.Array:
  """u8[batch, h, w, c] -> f32[batch]: Bernoulli NLL (nats) of each image under Dec(Enc(x)),
  the anomaly score of the one-class protocol."""
  x = images_to_float(images)
  return losses.bernoulli_nll(_to_unit(x), _decode(models, state.params, encode(models, state, images)[0]))


def prior_log_density(config: ml_collections.ConfigDict, z: jax.Array) -> jax.Array:
  """f32[batch]: log p(z) (nats) of f32[batch, latent_dim] codes under the configured prior
  (for the mixture, with components equally likely)."""
  if config.aae.prior == "gaussian":
    return priors.gaussian_log_density(z)
  return priors.mixture_log_density(z, config.aae.num_components)


def eval_step(models, config: ml_collections.ConfigDict, state: TrainState, images: jax.Array,
              key: jax.Array) -> dict[str, jax.Array]:  # pylint: disable=unused-argument
  """Batch means on held-out images: ``pixel_bce`` (Bernoulli NLL of x under Dec(Enc(x)), nats
  per image) and ``pixel_mse`` (squared error of its means on [-1, 1] pixels, as every method).

  Args:
    images: u8[batch, h, w, c]; key: unused (the encoder is deterministic).
  """
  x = images_to_float(images)
  code, _ = encode(models, state, images)
  logits = _decode(models, state.params, code)
  return {"pixel_bce": jnp.mean(losses.bernoulli_nll(_to_unit(x), logits)),
          "pixel_mse": jnp.mean(jnp.square(2.0 * jax.nn.sigmoid(logits) - 1.0 - x))}
