"""The fully connected networks of the adversarial autoencoder (Makhzani et al. 2015, MNIST).

Encoder, decoder and latent discriminator are each ``hidden`` ReLU layers (2 x 1000 in the
paper). There is no BatchNorm anywhere: users of the public ports report that BatchNorm in
the latent discriminator breaks training. The decoder is
``mlp.MLPDecoder`` (Bernoulli logits), fed the code z, or [y, z] in the semi-supervised AAE.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaegan_jax.models.mlp import relu_layers


class AAEEncoder(nn.Module):
  """Deterministic q(z|x), and with ``num_classes > 0`` also q(y|x): flattened images -> (z, y logits).

  Attributes:
    latent_dim: size of the code z (8 for likelihood, 2 for figures, 10 as the semi-supervised style).
    hidden: widths of the hidden ReLU layers ((1000, 1000) in the paper).
    num_classes: size of the categorical head y (10 in the semi-supervised AAE; 0 = none).
    dropout: rate of dropout after each hidden layer when ``train`` (0 = none); needs a
      "dropout" rng then.
    dtype: computation dtype; parameters are f32.
  """

  latent_dim: int = 8
  hidden: Sequence[int] = (1000, 1000)
  num_classes: int = 0
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Encodes f32[batch, h, w, c] images in [-1, 1]; ``train`` switches dropout on.

    Returns:
      (z, y_logits): f32[batch, latent_dim] codes and f32[batch, num_classes] class logits
      (f32[batch, 0] when ``num_classes == 0``).
    """
    h = x.reshape(x.shape[0], -1).astype(self.dtype)
    for width in self.hidden:   # the layers of mlp.relu_layers (Dense_0, Dense_1, ...), with dropout
      h = nn.Dropout(self.dropout, deterministic=not train or not self.dropout)(nn.relu(nn.Dense(width, dtype=self.dtype)(h)))
    z = nn.Dense(self.latent_dim, dtype=self.dtype, name="z")(h).astype(jnp.float32)
    if not self.num_classes:
      return z, jnp.zeros((x.shape[0], 0), jnp.float32)
    return z, nn.Dense(self.num_classes, dtype=self.dtype, name="y")(h).astype(jnp.float32)


class LatentDiscriminator(nn.Module):
  """D(v): a code (optionally with a one-hot label concatenated) -> the logit that v is a prior draw.

  Attributes:
    hidden: widths of the hidden ReLU layers ((1000, 1000) in the paper).
    dtype: computation dtype; parameters are f32.
  """

  hidden: Sequence[int] = (1000, 1000)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, v: jax.Array, train: bool) -> jax.Array:  # pylint: disable=unused-argument
    """f32[batch, features] -> f32[batch] logits (sigmoid = probability of "drawn from the prior")."""
    h = relu_layers(v.astype(self.dtype), self.hidden, self.dtype)
    return nn.Dense(1, dtype=self.dtype, name="logit")(h)[:, 0].astype(jnp.float32)


class LatentDiscriminators(nn.Module):
  """The AAE's discriminators as one parameter tree: ``z`` on codes and, with ``num_classes > 0``,
  ``y`` on class probabilities against one-hot categorical draws (the semi-supervised AAE).

  Attributes:
    hidden: widths of each discriminator's hidden ReLU layers.
    num_classes: 0 for the unsupervised AAE (only ``z``), else the size of y. (For the
      label-conditioned prior, the caller concatenates the one-hot label to ``z``'s input.)
    y_minibatch_mean: D_y sees each y beside the mean of the y's it is given in the same call
      (one batch of prior draws, or one batch of encoder outputs): minibatch statistics
      (Salimans et al. 2016, "Improved techniques for training GANs", sec. 3.2; Karras et al.
      2018, sec. 3), so that a batch whose classes are unbalanced is told from a batch of
      Cat(1/K) draws even when each of its vectors is one-hot, and penalised while q(y|x) is
      still soft. Without it the categorical adversary alone let q(y|x) collapse onto one
      class (docs/models/aae.md, "The semi-supervised gap").
    dtype: computation dtype; parameters are f32.
  """

  hidden: Sequence[int] = (1000, 1000)
  num_classes: int = 0
  y_minibatch_mean: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    self.z = LatentDiscriminator(self.hidden, self.dtype)
    if self.num_classes:
      self.y = LatentDiscriminator(self.hidden, self.dtype)

  def __call__(self, z_input: jax.Array, y_input: jax.Array | None, train: bool) -> tuple[jax.Array, jax.Array]:
    """Logits of D_z on f32[batch, dz] and of D_y on f32[batch, num_classes] (f32[batch] each;
    D_y's are zeros of shape [0] without a y head). With ``y_minibatch_mean``, D_y's input is
    [y, mean of y over the batch axis] (f32[batch, 2 * num_classes]); under a data-parallel
    ``jit`` the mean is over the whole global batch."""
    logits_z = self.z(z_input, train)
    if not self.num_classes:
      return logits_z, jnp.zeros((0,), jnp.float32)
    if self.y_minibatch_mean:
      y_input = jnp.concatenate(
          [y_input, jnp.broadcast_to(jnp.mean(y_input, axis=0, keepdims=True), y_input.shape)], axis=-1)
    return logits_z, self.y(y_input, train)
