"""Using a trained model from Python: ``vaegan_jax.load(path)``.

    import vaegan_jax
    model = vaegan_jax.load("runs/mine")          # newest checkpoint; step=N for another
    faces = model.sample(16, seed=0)              # u8[16, 64, 64, 3]
    z = model.encode(faces)                       # f32[16, latent]
    again = model.decode(z)                       # u8[16, 64, 64, 3]
    path = model.interpolate(faces[0], faces[1], 8)
    model.save("models/mine")                     # a folder that loads anywhere, without the data

Images go in and come out as u8 NumPy arrays of the dataset's shape [n, h, w, c] (one image
[h, w, c] is taken as a batch of one); ``model.prepare`` brings any image (a file, a Pillow
image, an array of another size or mode) to that shape the way the dataset was prepared.
Work is cut into batches of ``config.eval.batch_size`` for the jitted networks, which run on
the run's devices in evaluation mode (BatchNorm's running statistics).

``path`` is a ``train.py`` workdir or a model folder (``Model.save``, ``eval.py --workdir W
--save_model DIR``). Neither needs the dataset: a workdir whose dataset is missing here
restores its networks from its ``dataset.json``, and ``model.unavailable`` says what cannot
be done (attribute vectors need the training images, unless a model folder carries them).
Restoring itself lives in ``vaegan_jax.restore``, below this module and ``evaluators``.
"""

from __future__ import annotations

import functools
import os
import jax
import numpy as np
from PIL import Image

from vaegan_jax import images as image_lib
from vaegan_jax import metrics
from vaegan_jax import restore as restore_lib
from vaegan_jax.data import convert
from vaegan_jax.methods import aae, ccvae, mlvae, tvae, vaegan
from vaegan_jax.parallel import batched

_ENCODERLESS = ("gan",)


def load(path: str, step: int | None = None) -> "Model":
  """The model of a ``train.py`` workdir (its newest, or the given, checkpoint) or of a model folder.

  Raises:
    FileNotFoundError: no checkpoint (at ``step``) in a workdir; a workdir whose dataset is
      missing here and that has no ``dataset.json`` (runs before 2026-12-06).
    restore.ModelFolderError: a model folder that is incomplete, truncated, changed or of
      another format version (a ValueError).
    ValueError: a checkpoint this version cannot rebuild (see ``restore.restore_run``).
  """
  return Model(restore_lib.restore(path, step))


class Model:
  """A restored model. Attributes: ``method``, ``config``, ``step``, ``image_shape`` (h, w, c),
  ``latent_dim`` (the size of ``encode``'s codes and of ``decode``'s input), ``workdir`` (the
  workdir or model folder it came from), ``attribute_names`` (the dataset's attributes, such as
  CelebA's 40; empty without), ``class_names``, ``data_available`` (the dataset's images can
  be read here) and ``unavailable`` ("" or what is missing and why)."""

  def __init__(self, restored: restore_lib.Restored):
    self._restored, self._state = restored, restored.state
    config, m, models = restored.config, restored.config.method, restored.models
    self.config, self.method, self.step, self.workdir = config, m, restored.step, restored.source
    self.image_shape = tuple(restored.info.image_shape)
    self.attribute_names = tuple(restored.info.attribute_names or ())
    self.class_names = tuple(restored.info.class_names or ())
    self.data_available, self.unavailable = restored.data_available, restored.unavailable
    self._batch = int(config.eval.batch_size)
    state = self._state
    if m in ("vaegan", "vae", "gan"):
      encode, decode = (lambda s, x: vaegan.encode(models, s, x)[0]), (lambda s, z: vaegan.sample(models, s, z))
      draw = lambda key, n: jax.random.normal(key, (n, config.model.latent_dim))  # noqa: E731
    elif m == "tvae":
      encode, decode = (lambda s, x: tvae.encode(models, s, x)[0]), (lambda s, z: tvae.sample(models, s, z))
      draw = lambda key, n: jax.random.normal(key, (n, config.model.latent_dim))  # noqa: E731
    elif m in ("aae", "semi_aae"):
      encode, decode = (lambda s, x: aae.encode(models, s, x)[0]), (lambda s, z: aae.sample(models, s, z))
      draw = lambda key, n: aae.prior_sample(config, key, n)  # noqa: E731
    elif m == "mlvae":
      def encode(s, x):
        (style, _), (content, _) = mlvae.encode(models, config, s, x)
        return jax.numpy.concatenate([style, content], -1)
      decode = lambda s, z: mlvae.sample(models, s, z)  # noqa: E731
      draw = lambda key, n: mlvae.prior_sample(config, key, n)  # noqa: E731
    elif m == "ccvae":
      encode, decode = (lambda s, x: ccvae.encode(models, config, s, x)[0]), (lambda s, z: ccvae.decode(models, s, z))
      draw = lambda key, n: ccvae.conditional_latents(  # noqa: E731
          models, self._state, (jax.random.uniform(key, (n, ccvae.num_labels(config))) < 0.5).astype(np.float32),
          jax.random.normal(jax.random.fold_in(key, 1), (n, config.model.latent_dim)))
    else:
      raise ValueError(f"vaegan_jax.load cannot use a {m!r} run")
    # The state is an argument, not a constant baked into the compiled programs.
    self._encode = functools.partial(jax.jit(encode), self._state)
    self._decode = functools.partial(jax.jit(decode), self._state)
    if m == "semi_aae":
      self._classify = functools.partial(jax.jit(lambda s, x: jax.nn.softmax(aae.encode(models, s, x)[1], -1)), state)
    elif m == "ccvae":
      self._classify = functools.partial(jax.jit(lambda s, x: ccvae.classify(models, config, s, x)), state)
    else:
      self._classify = None
    if m == "mlvae":   # [content mu, content logvar] of each image: group_content's factors
      self._content_posterior = functools.partial(
          jax.jit(lambda s, x: jax.numpy.concatenate(mlvae.encode(models, config, s, x)[1], -1)), state)
    self._draw = draw
    self.latent_dim = int(jax.eval_shape(lambda key: draw(key, 1), jax.random.key(0)).shape[-1])
    self._vectors = None if restored.attribute_vectors is None else dict(restored.attribute_vectors)

  def save(self, folder: str) -> str:
    """Writes this model as a self-contained folder that ``vaegan_jax.load`` reads anywhere,
    without the dataset: parameters and BatchNorm statistics (no optimizer state), the config,
    the dataset's shape and names and, for VAE/GAN and VAE on data with attributes, the
    attribute vectors (computed here from the training images; ``restore.save_model``).

    Returns:
      ``folder``.

    Raises:
      ValueError: ``folder`` exists, or is a train.py workdir (nothing is written).
    """
    restore_lib.check_save_target(folder)
    vectors = None
    if self.method in ("vaegan", "vae") and self.attribute_names and (self.data_available or self._vectors):
      vectors = self.attribute_vectors()
    restore_lib.save_model(self._restored, folder, vectors)
    return folder

  def __repr__(self) -> str:
    return (f"Model(method={self.method!r}, data={self.config.data.name!r}, step={self.step}, "
            f"image_shape={self.image_shape}, latent_dim={self.latent_dim})")

  # -- images in and out ---------------------------------------------------------------------

  def prepare(self, image) -> np.ndarray:
    """Any image to the dataset's form: u8[h, w, c] as the dataset's images were made (mode,
    centre square or ``data.crop``, antialiased resize; ``data.convert.square``).

    Args:
      image: a file path, a Pillow image, or a u8/u16 array [h, w], [h, w, 1|3|4].

    Raises:
      convert.ImageError: an unreadable file, or an image smaller than the dataset's and
        ``data.upscale`` off (the message says which).
    """
    spec = convert.ImageSpec(self.image_shape[0], self.image_shape[2], (), True)
    if isinstance(image, (str, os.PathLike)):
      try:
        with Image.open(image) as opened:
          opened.load()
          return convert.square(opened, spec, str(image))
      except OSError as e:
        raise convert.ImageError(f"{image} cannot be read as an image ({e})") from e
    if isinstance(image, Image.Image):
      return convert.square(image, spec, "image")
    return convert.from_array(np.asarray(image), spec, "image")

  def _images(self, images, what: str = "images") -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
      x = x[None]
    if x.dtype != np.uint8 or x.shape[1:] != self.image_shape:
      raise ValueError(f"{what} must be u8 [n, {', '.join(map(str, self.image_shape))}] (or one such image), the "
                       f"dataset's shape; got {x.dtype}{list(x.shape)}. model.prepare(image) converts any image")
    return x

  def _codes(self, z) -> np.ndarray:
    z = np.asarray(z, np.float32)
    if z.ndim == 1:
      z = z[None]
    if z.ndim != 2 or z.shape[1] != self.latent_dim:
      raise ValueError(f"codes must be f32 [n, {self.latent_dim}] (or one code); got {list(z.shape)}")
    return z

  def _require_encoder(self, what: str) -> None:
    if self.method in _ENCODERLESS:
      raise ValueError(f"{what} needs an encoder, and a {self.method!r} model has none: use sample() and decode()")

  # -- every method --------------------------------------------------------------------------

  def encode(self, images) -> np.ndarray:
    """u8 images -> f32[n, latent_dim] codes: the posterior mean (VAE/GAN, VAE, TVAE, CCVAE),
    the encoder's code (AAE; [softmax y, z] for semi_aae), [style mean, content mean] (ML-VAE,
    each image alone).

    Raises:
      ValueError: images of another shape or dtype; a GAN (no encoder).
    """
    self._require_encoder("encode")
    return batched(self._encode, self._images(images), self._batch).astype(np.float32)

  def decode(self, z) -> np.ndarray:
    """f32[n, latent_dim] codes -> u8[n, h, w, c] images (the decoder's mean image).

    Raises:
      ValueError: codes of another size.
    """
    return image_lib.to_uint8(batched(self._decode, self._codes(z), self._batch))

  def reconstruct(self, images) -> np.ndarray:
    """u8 images -> u8 Dec(encode(images))."""
    return self.decode(self.encode(images))

  def prior_codes(self, n: int, seed: int = 0) -> np.ndarray:
    """f32[n, latent_dim] draws of the model's prior (N(0, I), the AAE's mixture or
    [one-hot y, z] prior, CCVAE's p(z|y) with y ~ Bernoulli(1/2)); same seed, same codes."""
    if n < 1:
      raise ValueError(f"n={n}: draw at least one code")
    return np.asarray(self._draw(jax.random.key(seed), n), np.float32)

  def sample(self, n: int, seed: int = 0) -> np.ndarray:
    """u8[n, h, w, c] decodes of ``n`` prior draws (``prior_codes``); same seed, same images."""
    return self.decode(self.prior_codes(n, seed))

  def interpolate(self, a, b, num: int = 8) -> np.ndarray:
    """u8[num, h, w, c]: decodes of ``num`` codes evenly spaced on the line from encode(a) to
    encode(b), ends included; ``a`` and ``b`` are single u8 images."""
    self._require_encoder("interpolate")
    if num < 2:
      raise ValueError(f"num={num}: an interpolation has at least its two ends")
    za, zb = self.encode(self._images(a, "a")[:1]), self.encode(self._images(b, "b")[:1])
    t = np.linspace(0.0, 1.0, num, dtype=np.float32)[:, None]
    return self.decode((1 - t) * za + t * zb)

  # -- each method's extras ------------------------------------------------------------------

  def attribute_vectors(self) -> dict[str, np.ndarray]:
    """VAE/GAN and VAE on data with attributes (CelebA): {attribute: f32[latent_dim]}, the mean
    code of training images with the attribute minus the mean of those without (Larsen et al.
    2016, sec. 5.2; as eval.py computes them). Add ``s * vector`` to a code and decode.

    Raises:
      ValueError: another method, or a dataset without attributes.
    """
    if self.method not in ("vaegan", "vae"):
      raise ValueError(f"attribute vectors are for vaegan and vae models; this one is {self.method!r}")
    if not self.attribute_names:
      raise ValueError(f"{self.config.data.name} has no attributes to compute vectors from (CelebA has 40)")
    if self._vectors is None:
      if not self.data_available:
        raise ValueError(f"attribute vectors come from the training images, and {self.unavailable}: make the data "
                         "reachable, or use a model folder saved where it was (it carries the vectors)")
      from vaegan_jax import data  # pylint: disable=import-outside-toplevel
      train = data.split_arrays(self.config, self.config.data.train_split)
      vectors = metrics.attribute_vectors(self.encode(train["image"]), train["attributes"])
      self._vectors = {n: np.asarray(v, np.float32) for n, v in zip(self.attribute_names, vectors)}
    return dict(self._vectors)

  def classify(self, images) -> np.ndarray:
    """semi_aae: f32[n, K] class probabilities q(y|x); CCVAE: f32[n, L] probabilities
    q(y_i = 1 | z_c) of each label in ``config.ccvae.labels``.

    Raises:
      ValueError: another method.
    """
    if self._classify is None:
      raise ValueError(f"classify is for semi_aae and ccvae models; this one is {self.method!r}")
    return batched(self._classify, self._images(images), self._batch).astype(np.float32)

  def label_locations(self) -> dict[str, np.ndarray]:
    """CCVAE: the conditional prior's locations, ``{"loc_false": f32[L, block], "loc_true": f32[L, block]}``,
    row i the block of label ``config.ccvae.labels[i]`` under p(z_c | y_i = 0) and = 1.

    Raises:
      ValueError: another method.
    """
    if self.method != "ccvae":
      raise ValueError(f"label_locations is for ccvae models; this one is {self.method!r}")
    prior = ccvae.prior_parameters(self._state)
    return {"loc_false": prior["loc_false"], "loc_true": prior["loc_true"]}

  def intervene(self, images, label: str, value: bool) -> np.ndarray:
    """CCVAE: u8 Dec(z) with the block of ``label`` in z_c set to the location of p(z_c | y = value)
    (Joy et al. 2021, sec. 4: characteristic interventions), the rest of z the posterior mean.

    Raises:
      ValueError: another method, or a label not in ``config.ccvae.labels``.
    """
    if self.method != "ccvae":
      raise ValueError(f"intervene is for ccvae models; this one is {self.method!r}")
    names = list(self.config.ccvae.labels)
    if label not in names:
      raise ValueError(f"label {label!r} is not one of this model's labels {names}")
    i, block = names.index(label), self.config.ccvae.block_dim
    z = self.encode(images)
    z[:, i * block:(i + 1) * block] = self.label_locations()["loc_true" if value else "loc_false"][i]
    return self.decode(z)

  def group_content(self, images) -> np.ndarray:
    """ML-VAE: f32[content_dim], the mean of the group's content posterior: the product of the
    content posteriors of all ``images`` (u8[n, h, w, c], one group), as in training
    (Bouchacourt et al. 2018, eq. 7; ``mlvae.product_of_gaussians``).

    Raises:
      ValueError: another method, or no images.
    """
    if self.method != "mlvae":
      raise ValueError(f"group_content is for mlvae models; this one is {self.method!r}")
    x = self._images(images)
    if not len(x):
      raise ValueError("group_content needs at least one image of the group")
    mu, logvar = np.split(batched(self._content_posterior, x, self._batch), 2, axis=-1)
    return np.asarray(mlvae.product_of_gaussians(mu, logvar, axis=0)[0], np.float32)

  def swap(self, style_images, content_images) -> np.ndarray:
    """ML-VAE: u8 Dec(style of style_images[i], content of content_images[i]) (Bouchacourt et
    al. 2018, fig. 3); both u8 [n, h, w, c] of the same n.

    Raises:
      ValueError: another method, or batches of different sizes.
    """
    if self.method != "mlvae":
      raise ValueError(f"swap is for mlvae models; this one is {self.method!r}")
    a, b = self._images(style_images, "style_images"), self._images(content_images, "content_images")
    if len(a) != len(b):
      raise ValueError(f"style_images ({len(a)}) and content_images ({len(b)}) must be equally many")
    style_dim = self.config.mlvae.style_dim
    za, zb = self.encode(a), self.encode(b)
    return self.decode(np.concatenate([za[:, :style_dim], zb[:, style_dim:]], -1))

