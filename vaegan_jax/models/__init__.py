"""Flax networks: each a separate Linen module with its own parameter tree."""

from vaegan_jax.models.aae import AAEEncoder, LatentDiscriminator, LatentDiscriminators
from vaegan_jax.models.ccvae import CharacteristicClassifier, ConditionalPrior, ConvDecoder, ConvEncoder
from vaegan_jax.models.larsen import Decoder, Discriminator, Encoder, check_image_shape
from vaegan_jax.models.layers import SubpixelConvTranspose, SubpixelUpsample
from vaegan_jax.models.mlp import MLPDecoder, MLPEncoder

__all__ = ["AAEEncoder", "LatentDiscriminator", "LatentDiscriminators", "Encoder", "Decoder", "Discriminator", "SubpixelConvTranspose", "SubpixelUpsample", "ConvEncoder", "ConvDecoder",
           "CharacteristicClassifier", "ConditionalPrior", "check_image_shape", "MLPEncoder", "MLPDecoder"]
