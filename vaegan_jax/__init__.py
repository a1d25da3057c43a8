"""vaegan_jax: VAE/GAN (Larsen et al. 2016) and its family in JAX.

Modules: ``losses`` (pure loss functions), ``models`` (Flax networks), ``methods`` (train
states and steps), ``data`` (tfds builders + grain), ``parallel`` (device mesh),
``checkpoint`` (orbax), ``trainer`` (the train loop), ``evaluators`` (eval.py: one
evaluator per method, beside ``methods``).
"""

__version__ = "0.1.0"
