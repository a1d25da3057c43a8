"""vaegan_jax: VAE/GAN (Larsen et al. 2016) and its family in JAX.

Where things are (a reader's map; docs/code.md has a line per file):

* ``models/``: the Flax networks (``larsen`` for VAE/GAN, ``mlp``, ``aae``, ``ccvae``;
  ``layers``: the stride-2 convolutions).
* ``losses``: pure loss functions (KL, likelihoods, GAN terms, balancing masks).
* ``methods/``: one module per model: its train state, losses and jitted train step
  (``vaegan`` also serves ``vae`` and ``gan``; ``common``: what they share).
* ``evaluators/``: one module per model beside ``methods/``: what ``eval.py`` measures.
* ``data/``: tfds builders and the grain pipeline (``builders``, ``pipeline``), your own
  images (``folder``), any tfds catalog dataset (``catalog``), the image conversion both use
  (``convert``) and the batch structures some models need (``triplets``, ``groups``,
  ``labelled``, ``supervision``).
* ``api``: ``vaegan_jax.load(workdir)``, a trained model from Python (encode, decode, sample...).
* ``trainer``: the train loop of ``train.py``; ``config``: every setting and its check.
* ``parallel`` (the device mesh), ``distributed`` (several processes), ``checkpoint``
  (orbax), ``preemption`` (SIGTERM), ``workdir`` (one writer per run folder).
* ``metrics``, ``domain_classifier``, ``priors``, ``images``, ``metric_writers``: sample
  scores, the classifier that scores samples, AAE priors, PNG grids, JSON/TensorBoard logs.
"""

__version__ = "0.1.0"


def load(workdir: str, step: int | None = None):
  """A trained model of a ``train.py`` workdir (newest checkpoint, or ``step``): see ``vaegan_jax.api``."""
  from vaegan_jax import api  # pylint: disable=import-outside-toplevel  # keeps `import vaegan_jax` light
  return api.load(workdir, step)
