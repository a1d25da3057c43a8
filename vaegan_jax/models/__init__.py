"""Flax networks: each a separate Linen module with its own parameter tree."""

from vaegan_jax.models.larsen import Decoder, Discriminator, Encoder, check_image_shape
from vaegan_jax.models.layers import SubpixelConvTranspose

__all__ = ["Encoder", "Decoder", "Discriminator", "SubpixelConvTranspose", "check_image_shape"]
