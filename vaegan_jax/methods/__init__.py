"""Training methods: each module builds networks, a train state and a pure train step.

A method module provides ``NETWORKS``, ``build_models``, ``make_optimizers``,
``learning_rate_schedule``, ``create_train_state``, ``make_train_step``, ``encode``,
``reconstruct``, ``sample``, ``eval_step`` and ``train_dataset`` (what its batches are); a method
whose prior is not N(0, I), or whose decoder input is not ``model.latent_dim`` wide, also provides
``prior_sample(config, key, num)``; one whose batches are groups of images that must stay on one
device provides ``batch_group_size(config)`` (ML-VAE). ``sample`` decodes what ``prior_sample``
draws (latents, or for the CCVAE the noise its learnt conditional prior maps to latents).
"""

from __future__ import annotations

import types


def get(method: str) -> types.ModuleType:
  """The module implementing ``config.method``.

  Raises:
    ValueError: an unknown method.
  """
  from vaegan_jax.methods import aae, ccvae, mlvae, tvae, vaegan  # pylint: disable=import-outside-toplevel
  modules = {"vaegan": vaegan, "vae": vaegan, "gan": vaegan, "tvae": tvae, "aae": aae, "semi_aae": aae,
             "mlvae": mlvae, "ccvae": ccvae}
  if method not in modules:
    raise ValueError(f"unknown method {method!r}; one of {sorted(modules)}")
  return modules[method]
