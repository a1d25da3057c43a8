"""Checkpoint evaluation: ``evaluate(workdir, step)`` writes ``workdir/eval/<step>/metrics.json`` and PNG figures.

A run is restored with its own saved config. Each method registers an evaluator in
``EVALUATORS`` (method name -> function of an ``EvalContext`` returning metrics); the
VAE/GAN family (vaegan, vae, gan) shares ``evaluate_vaegan_family``, and later models add
theirs the same way. What every evaluation reports, on the test split:

* reconstruction (encoder models): pixel MSE, the Dis_l feature error (with a
  discriminator), KL and the ELBO terms;
* sample quality: Fréchet and kernel (KID) distances between test images and prior samples,
  and between test images and reconstructions, in the embedding of a domain classifier
  trained once per dataset (``domain_classifier``), whose test accuracy is reported with them;
* sharpness: mean Laplacian variance of reconstructions and samples over that of the test
  images (1.0 = as sharp as real data);
* on labelled data (MNIST): how often the domain classifier's verdict on a reconstruction is
  the input's true label (``reconstructions/label_accuracy``; ``test/label_accuracy`` on the
  test images themselves is its ceiling);
* on data with attribute labels (the CelebA subset): attribute agreement of reconstructions
  scored by the 40-attribute classifier, and attribute arithmetic (Larsen et al. 2016,
  sec. 5.2) with the classifier's probability of the attribute before and after the edit.

Nothing is written unless the whole evaluation succeeds: results go to a temporary folder
that replaces ``eval/<step>`` at the end; checkpoints are only read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vaegan_jax import config as config_lib
from vaegan_jax import data, domain_classifier, images, metrics, trainer
from vaegan_jax.checkpoint import Checkpointer
from vaegan_jax.data import triplets
from vaegan_jax.methods import vaegan
from vaegan_jax.methods.common import TrainState


def restore_run(workdir: str, step: int | None = None):
  """Rebuilds a run from its own saved config and restores a checkpoint (nothing is written).

  Args:
    workdir: a folder written by ``train.py``.
    step: the checkpoint step; None for the newest.

  Returns:
    (run, state, step): ``run`` is a ``trainer.Run`` built from the saved config.

  Raises:
    FileNotFoundError: no checkpoints in ``workdir``, or none at ``step``.
    ValueError: the checkpoint's config is not one this version can build, or its arrays
      cannot be read (truncated, corrupt, or of another architecture); the message lists
      the other saved steps to try with ``--step``.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir} has no checkpoints/ folder: is it a train.py --workdir?")
  checkpointer = Checkpointer(directory, create=False, alone=True)
  try:
    saved = checkpointer.all_steps()
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint")
    if step not in saved:
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; saved: {saved}")
    others = [s for s in saved if s != step]
    hint = f"other saved steps: {others or 'none'} (eval.py --step N)"
    try:
      config = config_lib.from_json(checkpointer.restore_config(step))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"the config saved with checkpoint {step} in {directory} cannot be read "
                       f"({type(e).__name__}: {str(e)[:300]}); {hint}") from e
    try:
      run = trainer.setup(config, jax.local_devices())  # FileNotFoundError (e.g. missing data) passes as it is
    except ValueError as e:
      raise ValueError(f"the run in {workdir} (method {config.method!r}, data {config.data.name!r}) "
                       f"cannot be rebuilt by this version: {e}") from e
    try:
      state, _, _ = checkpointer.restore(step, run.abstract_state())
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"checkpoint {step} in {directory} cannot be restored ({type(e).__name__}: "
                       f"{str(e)[:300]}). It may be truncated, corrupt or of another architecture; {hint}") from e
  finally:
    checkpointer.close()
  return run, state, step


@dataclasses.dataclass
class EvalContext:
  """What an evaluator works with.

  Attributes:
    run: the restored ``trainer.Run`` (config, models, dataset info).
    state: the restored ``TrainState``.
    step: the checkpoint's step.
    test: the whole test split as arrays (``data.split_arrays``).
    train: the whole train split as arrays.
    classifier: the dataset's ``DomainClassifier``.
    outdir: the folder figures go to (becomes ``eval/<step>``).
    progress: a tqdm bar; evaluators call ``progress.update()`` per stage.
  """

  run: trainer.Run
  state: TrainState
  step: int
  test: dict[str, np.ndarray]
  train: dict[str, np.ndarray]
  classifier: domain_classifier.DomainClassifier
  outdir: str
  progress: tqdm

  @property
  def config(self):
    return self.run.config


def _batched(fn: Callable, arrays: np.ndarray, batch_size: int) -> np.ndarray:
  """Applies a jitted ``fn`` to ``arrays`` in chunks and concatenates the host results."""
  return np.concatenate([np.asarray(jax.device_get(fn(arrays[i:i + batch_size])))
                         for i in range(0, len(arrays), batch_size)])


def _save(ctx: EvalContext, name: str, grid: np.ndarray) -> None:
  images.save_png(os.path.join(ctx.outdir, f"{name}.png"), grid)


def classifier_for(config, train: dict, test: dict) -> domain_classifier.DomainClassifier:
  """The dataset's cached domain classifier: attributes where the dataset has them, else labels.

  Raises:
    ValueError: the dataset has neither labels nor attributes.
  """
  info = data.dataset_info(config)
  if "attributes" in train:
    kind, targets, test_targets, names = "multilabel", train["attributes"], test["attributes"], info.attribute_names
  elif "label" in train:
    kind, targets, test_targets = "categorical", train["label"], test["label"]
    names = tuple(str(i) for i in range(int(targets.max()) + 1))
  else:
    raise ValueError(f"{config.data.name} has neither labels nor attributes to train a domain classifier on")
  return domain_classifier.load_or_train(
      config.data.name, kind, names, train["image"], targets, test["image"], test_targets,
      epochs=config.eval.classifier_epochs, seed=config.seed, cache_dir=config.eval.cache_dir or None)


def _quality(ctx: EvalContext, name: str, generated: np.ndarray, test_embedding: np.ndarray) -> dict:
  """Fréchet / kernel distance to the test images and sharpness ratio of f32 images in [-1, 1]."""
  _, embedding = domain_classifier.predict(ctx.classifier, generated, ctx.config.eval.batch_size)
  return {f"{name}/frechet_distance": metrics.frechet_distance(test_embedding, embedding),
          f"{name}/kernel_distance": metrics.kernel_distance(test_embedding, embedding),
          f"{name}/sharpness_ratio": metrics.sharpness_ratio(generated, ctx.test["image"])}


def _mean_terms(ctx: EvalContext, inputs: np.ndarray, per_call: int) -> dict[str, float]:
  """Means over ``inputs`` (along the first axis: images, or ML-VAE's groups) of the method's
  ``eval_step`` terms, ``per_call`` rows per device call, each call with its own key."""
  step = jax.jit(functools.partial(ctx.run.method.eval_step, ctx.run.models, ctx.config))
  key = jax.random.key(ctx.config.seed)
  sums, count = {}, 0
  for i in range(0, len(inputs), per_call):
    chunk = inputs[i:i + per_call]
    for k, v in jax.device_get(step(ctx.state, chunk, jax.random.fold_in(key, i))).items():
      sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
    count += len(chunk)
  return {k: v / count for k, v in sums.items()}


def _loss_terms(ctx: EvalContext) -> dict:
  """Test-split means of the method's ``eval_step`` terms, plus the ELBOs they make."""
  out = {f"loss/{k}": v for k, v in _mean_terms(ctx, ctx.test["image"], ctx.config.eval.batch_size).items()}
  if "loss/kl" in out:
    # The model's own bound (llike on Dis_l features for VAE/GAN, on pixels for the VAE), and the
    # bound of the same decoder read as a Gaussian pixel model (comparable across models).
    out["loss/elbo"] = -(out["loss/kl"] + out["loss/llike"])
    if "loss/pixel_nll" in out:
      out["loss/elbo_pixel"] = -(out["loss/kl"] + out["loss/pixel_nll"])
  return out


def _attribute_agreement(ctx: EvalContext, prefix: str, probs: np.ndarray) -> dict:
  """Accuracy and cosine similarity (±1 coding, as the paper's regressor table) against the true attributes."""
  truth = ctx.test["attributes"].astype(bool)
  a, b = 2.0 * probs - 1.0, 2.0 * truth - 1.0
  cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
  return {f"{prefix}/attribute_accuracy": float(np.mean((probs > 0.5) == truth)),
          f"{prefix}/attribute_cosine": float(np.mean(cosine))}


def attribute_arithmetic(ctx: EvalContext, encode: Callable, decode: Callable, z_test: np.ndarray,
                         count: int = 64) -> dict:
  """Larsen et al. 2016, sec. 5.2: z + s * (mean z(a=1) - mean z(a=0)), scored by the attribute classifier.

  The vectors come from posterior means of the whole training split (``encode``); the edit is
  applied to the posterior means ``z_test`` of up to ``count`` test images that lack the
  attribute, for each ``config.eval.strengths``.

  Returns:
    ``arithmetic/<attribute>/prob_at_<s>``: mean classifier probability of the attribute after
    adding s times its vector (s = 0 is the unedited reconstruction); ``.../prob_of_input``:
    the same on the input images; ``.../raised_fraction``: fraction of images whose
    probability rose from s = 0 to the largest strength.

  Raises:
    ValueError: a configured attribute the dataset does not have.
  """
  names = list(ctx.run.info.attribute_names)
  unknown = [a for a in ctx.config.eval.attributes if a not in names]
  if unknown:
    raise ValueError(f"config.eval.attributes {unknown} are not attributes of {ctx.config.data.name}; "
                     f"choose from {names}")
  bs = ctx.config.eval.batch_size
  z_train = _batched(encode, ctx.train["image"], bs)
  vectors = metrics.attribute_vectors(z_train, ctx.train["attributes"])
  strengths = tuple(ctx.config.eval.strengths)
  out, rows = {}, []
  for attribute in ctx.config.eval.attributes:
    a = names.index(attribute)
    chosen = np.flatnonzero(~ctx.test["attributes"][:, a].astype(bool))[:count]
    if len(chosen) == 0 or not np.all(np.isfinite(vectors[a])):
      continue
    x = ctx.test["image"][chosen]
    probs_in, _ = domain_classifier.predict(ctx.classifier, x, bs)
    out[f"arithmetic/{attribute}/prob_of_input"] = float(probs_in[:, a].mean())
    edited = [_batched(decode, z_test[chosen] + s * vectors[a][None].astype(np.float32), bs) for s in strengths]
    probs = [domain_classifier.predict(ctx.classifier, e, bs)[0][:, a] for e in edited]
    for s, p in zip(strengths, probs):
      out[f"arithmetic/{attribute}/prob_at_{s:g}"] = float(p.mean())
    out[f"arithmetic/{attribute}/raised_fraction"] = float(np.mean(probs[-1] > probs[0]))
    for i in range(min(4, len(chosen))):
      rows.append([x[i]] + [images.to_uint8(e[i:i + 1])[0] for e in edited])
  if rows:
    _save(ctx, "attribute_arithmetic", images.make_grid(np.stack([im for row in rows for im in row]), len(rows[0])))
  return out


def _interpolation_grid(ctx: EvalContext, z_a: np.ndarray, z_b: np.ndarray, decode: Callable,
                        ends: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
  """Rows of Dec((1 - t) z_a + t z_b) for t in [0, 1], framed by the two inputs when given."""
  t = np.linspace(0.0, 1.0, ctx.config.eval.interpolation_steps, dtype=np.float32)
  z = (1.0 - t)[None, :, None] * z_a[:, None] + t[None, :, None] * z_b[:, None]
  decoded = images.to_uint8(_batched(decode, z.reshape(-1, z.shape[-1]), ctx.config.eval.batch_size))
  decoded = decoded.reshape(len(z_a), len(t), *decoded.shape[1:])
  if ends is not None:
    decoded = np.concatenate([ends[0][:, None], decoded, ends[1][:, None]], axis=1)
  return images.make_grid(decoded.reshape(-1, *decoded.shape[2:]), decoded.shape[1])


def evaluate_vaegan_family(ctx: EvalContext) -> dict:
  """Metrics and figures of a VAE/GAN, VAE or GAN checkpoint (see the module docstring).

  Figures written to ``ctx.outdir``: ``reconstructions.png`` (rows of inputs above rows of
  Dec(mu)), ``samples.png`` (Dec(z_p), z_p ~ N(0, I)), ``interpolation.png`` (each row: input
  A, Dec along the line from z_A to z_B, input B; prior draws for the GAN) and, on data with
  attributes, ``attribute_arithmetic.png`` (per attribute four test images; columns: input,
  then one column per strength).
  """
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x = c.eval.batch_size, ctx.test["image"]
  has_encoder = "encoder" in state.params
  out = _loss_terms(ctx)
  ctx.progress.update()

  decode = jax.jit(lambda z: vaegan.sample(models, state, z))
  encode = jax.jit(lambda im: vaegan.encode(models, state, im)[0])
  test_probs, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  z_prior = np.asarray(jax.random.normal(jax.random.key(c.seed + 1), (len(x), c.model.latent_dim)))
  samples = _batched(decode, z_prior, bs)
  out.update(_quality(ctx, "samples", samples, test_embedding))
  rows = c.train.num_image_rows
  _save(ctx, "samples", images.make_grid(images.to_uint8(samples[:rows * rows]), rows))
  ctx.progress.update()

  if has_encoder:
    z_test = _batched(encode, x, bs)  # posterior means, reused below
    recon = _batched(decode, z_test, bs)
    out.update(_quality(ctx, "reconstructions", recon, test_embedding))
    n = rows * rows // 2
    _save(ctx, "reconstructions",
          images.make_grid(images.interleave_rows(x[:n], images.to_uint8(recon[:n]), rows), rows))
    recon_probs, _ = domain_classifier.predict(ctx.classifier, recon, bs)
    if "attributes" in ctx.test:
      out.update(_attribute_agreement(ctx, "test", test_probs))
      out.update(_attribute_agreement(ctx, "reconstructions", recon_probs))
    elif "label" in ctx.test:
      # Does Dec(mu(x)) keep x's class? The classifier's verdict on reconstructions against the
      # true label, beside its accuracy on the test images themselves (its ceiling).
      out["test/label_accuracy"] = float(np.mean(np.argmax(test_probs, 1) == ctx.test["label"]))
      out["reconstructions/label_accuracy"] = float(np.mean(np.argmax(recon_probs, 1) == ctx.test["label"]))
  ctx.progress.update()

  pairs = min(c.eval.num_pairs, len(x) // 2)
  if has_encoder:
    half = len(x) // 2
    grid = _interpolation_grid(ctx, z_test[:pairs], z_test[half:half + pairs], decode,
                               (x[:pairs], x[half:half + pairs]))
  else:
    grid = _interpolation_grid(ctx, z_prior[:pairs], z_prior[pairs:2 * pairs], decode, None)
  _save(ctx, "interpolation", grid)
  if has_encoder and "attributes" in ctx.test:
    out.update(attribute_arithmetic(ctx, encode, decode, z_test))
  ctx.progress.update()
  return out


def latent_figure(mu: np.ndarray, labels: np.ndarray, path: str, title: str) -> None:
  """Writes a PNG scatter of ``mu`` (f32[n, d]) coloured by ``labels``: the points themselves when
  d == 2, else their 2-D PCA projection."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
  mu = np.asarray(mu, np.float64)
  projected = mu if mu.shape[1] == 2 else PCA(n_components=2, random_state=0).fit_transform(mu)
  fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
  points = ax.scatter(projected[:, 0], projected[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, linewidths=0)
  ax.legend(*points.legend_elements(), loc="best", fontsize=6, markerscale=0.8, title="class", title_fontsize=6)
  ax.set_title(title, fontsize=8)
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def evaluate_tvae(ctx: EvalContext) -> dict:
  """Metrics and figures of a TVAE checkpoint (or of its plain-VAE baseline, triplet_weight 0).

  Metrics: the ELBO terms of ``tvae.eval_step`` on the whole test split, ``triplet/accuracy``
  over ``eval.triplets_per_class`` fixed, seeded test triplets per anchor class
  (``data.triplets.eval_triplets``, seed ``config.seed``) on the posterior means, and the
  sample and reconstruction quality scores of every method. Figures: ``reconstructions.png``,
  ``samples.png`` and ``latent_pca.png`` (2-D PCA of the test means, coloured by class).
  """
  c, state, models, method = ctx.config, ctx.state, ctx.run.models, ctx.run.method
  bs, x, labels = c.eval.batch_size, ctx.test["image"], ctx.test["label"]
  out = _loss_terms(ctx)
  ctx.progress.update()

  encode = jax.jit(lambda im: method.encode(models, state, im)[0])
  decode = jax.jit(lambda z: method.sample(models, state, z))
  mu = _batched(encode, x, bs)
  chosen = triplets.eval_triplets(labels, c.eval.triplets_per_class, c.seed)
  out["triplet/accuracy"] = metrics.triplet_accuracy(mu, chosen)
  out["triplet/count"] = float(len(chosen))
  ctx.progress.update()

  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  rows = c.train.num_image_rows
  z_prior = np.asarray(jax.random.normal(jax.random.key(c.seed + 1), (len(x), c.model.latent_dim)))
  samples = _batched(decode, z_prior, bs)
  out.update(_quality(ctx, "samples", samples, test_embedding))
  _save(ctx, "samples", images.make_grid(images.to_uint8(samples[:rows * rows]), rows))
  recon = _batched(decode, mu, bs)
  out.update(_quality(ctx, "reconstructions", recon, test_embedding))
  n = rows * rows // 2
  _save(ctx, "reconstructions", images.make_grid(images.interleave_rows(x[:n], images.to_uint8(recon[:n]), rows), rows))
  ctx.progress.update()

  name = "TVAE" if c.loss.triplet_weight > 0 else "VAE (triplet_weight 0)"
  latent_figure(mu, labels, os.path.join(ctx.outdir, "latent_pca.png"),
                f"{name}, {c.data.name} test means: triplet acc. {out['triplet/accuracy']:.2%}")
  ctx.progress.update()
  return out


def _standardise(score: np.ndarray, reference: np.ndarray) -> np.ndarray:
  return (score - reference.mean()) / max(float(reference.std()), 1e-12)


def evaluate_aae(ctx: EvalContext) -> dict:
  """Metrics and figures of an adversarial autoencoder checkpoint (aae or semi_aae).

  Metrics (Makhzani et al. 2015's protocols):

  * ``loss/pixel_bce``, ``loss/pixel_mse``: reconstruction of the test split;
  * ``parzen/log_likelihood`` (+- ``parzen/log_likelihood_sem``): Parzen-window log-likelihood
    (nats) of the test split from ``eval.parzen_samples`` decoded prior draws, pixels in [0, 1],
    the bandwidth (``parzen/bandwidth``) chosen among ``eval.parzen_num_bandwidths`` log-spaced
    values on ``data.validation_split`` (skipped when that is ""); paper: 340 +- 2;
  * semi_aae: ``classification/test_error`` of argmax q(y|x) on the test split (paper, 100
    labels: 1.90% +- 0.10);
  * anomaly detection (``aae.normal_class >= 0``, trained on that class only): ROC AUC of
    the reconstruction error (Bernoulli NLL of Dec(Enc(x))) for telling the other classes of
    the test split from the normal one, and of a combined score, the sum of the
    reconstruction error and -log p(Enc(x)), each standardised on the normal training
    images (a code far from the prior is anomalous too);
  * the sample quality scores of every method (FD, KID, sharpness against the test split).

  Figures: ``samples.png``, ``reconstructions.png``, ``latent.png`` (test codes coloured by
  class: the 2-D code itself, else its PCA), and for a label-conditioned mixture or semi_aae
  ``samples_by_class.png`` (row k decodes prior draws of class k).
  """
  from vaegan_jax.methods import aae  # pylint: disable=import-outside-toplevel
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x, labels = c.eval.batch_size, ctx.test["image"], ctx.test["label"]
  out = _loss_terms(ctx)
  encode = jax.jit(lambda im: aae.encode(models, state, im))
  decode = jax.jit(lambda code: aae.sample(models, state, code))
  parts = [jax.device_get(encode(x[i:i + bs])) for i in range(0, len(x), bs)]
  codes = np.concatenate([p[0] for p in parts])
  y_logits = np.concatenate([p[1] for p in parts])
  z = codes[:, aae.num_classes(c):]
  if aae.num_classes(c):
    out["classification/test_error"] = float(np.mean(np.argmax(y_logits, -1) != labels))
  ctx.progress.update()

  prior_codes = np.asarray(aae.prior_sample(c, jax.random.key(c.seed + 2), c.eval.parzen_samples))
  samples = _batched(decode, prior_codes, bs)
  if c.data.validation_split:
    flat = lambda a: a.reshape(len(a), -1).astype(np.float32)  # noqa: E731
    validation = data.split_arrays(c, c.data.validation_split)["image"]
    bandwidths = np.logspace(np.log10(c.eval.parzen_min_bandwidth), np.log10(c.eval.parzen_max_bandwidth),
                             c.eval.parzen_num_bandwidths)
    parzen = metrics.parzen_evaluation(flat(validation) / 255.0, flat(x) / 255.0, (flat(samples) + 1.0) / 2.0,
                                       bandwidths)
    out.update({f"parzen/{k}": v for k, v in parzen.items()})
    out["parzen/num_samples"] = float(len(samples))
  ctx.progress.update()

  if c.aae.normal_class >= 0:
    error = jax.jit(lambda im: aae.reconstruction_error(models, state, im))
    density = jax.jit(lambda v: aae.prior_log_density(c, v))
    normal_train = ctx.train["image"][ctx.train["label"] == c.aae.normal_class][:5000]
    z_train = _batched(lambda im: encode(im)[0], normal_train, bs)
    reference = (_batched(error, normal_train, bs), -_batched(density, z_train, bs))
    scores = (_batched(error, x, bs), -_batched(density, z, bs))
    anomalous = labels != c.aae.normal_class
    combined = _standardise(scores[0], reference[0]) + _standardise(scores[1], reference[1])
    out.update({"anomaly/normal_class": float(c.aae.normal_class),
                "anomaly/roc_auc_reconstruction": metrics.roc_auc(scores[0], anomalous),
                "anomaly/roc_auc_combined": metrics.roc_auc(combined, anomalous)})

  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  out.update(_quality(ctx, "samples", samples, test_embedding))
  rows = c.train.num_image_rows
  _save(ctx, "samples", images.make_grid(images.to_uint8(samples[:rows * rows]), rows))
  recon = _batched(decode, codes, bs)
  n = rows * rows // 2
  _save(ctx, "reconstructions", images.make_grid(images.interleave_rows(x[:n], images.to_uint8(recon[:n]), rows), rows))
  ctx.progress.update()

  by_class = aae.num_classes(c) or (c.aae.num_components if c.aae.condition_on_label else 0)
  if by_class:
    per_row = 10
    classes = jnp.repeat(jnp.arange(by_class), per_row)
    grid_codes = aae.prior_sample(c, jax.random.key(c.seed + 3), len(classes), labels=classes)
    _save(ctx, "samples_by_class", images.make_grid(images.to_uint8(np.asarray(decode(grid_codes))), per_row))
  what = {"aae": f"AAE, {c.aae.prior} prior" + (", label-conditioned" if c.aae.condition_on_label else ""),
          "semi_aae": f"semi-supervised AAE, {c.aae.num_labels} labels (style z)"}[c.method]
  latent_figure(z, labels, os.path.join(ctx.outdir, "latent.png"), f"{what}: {c.data.name} test codes")
  ctx.progress.update()
  return out


MATCHING_GALLERY = (1, 2, 5, 10)   # ML-VAE: gallery images accumulated into each group's prototype


def _swap_grid(sources_style: np.ndarray, sources_content: np.ndarray, cells: np.ndarray) -> np.ndarray:
  """(n+1) x (m+1) grid: content sources along the top, style sources down the left, cell (r, c)
  the decoded swap; u8 inputs, the top-left corner blank."""
  n, m = len(sources_style), len(sources_content)
  blank = np.full((1, *cells.shape[1:]), 255, np.uint8)
  rows = [np.concatenate([blank, sources_content])]
  rows += [np.concatenate([sources_style[r:r + 1], cells[r * m:(r + 1) * m]]) for r in range(n)]
  return images.make_grid(np.concatenate(rows), m + 1)


def evaluate_mlvae(ctx: EvalContext) -> dict:
  """Metrics and figures of an ML-VAE checkpoint (Bouchacourt et al. 2018, sec. 5).

  Groups are formed by ``mlvae.group_by`` (digit, identity) on the test split.

  * ``loss/elbo_grouped`` (+ ``llike``, ``kl_style``, ``kl_content`` per group): the test ELBO,
    nats per image, of test groups of ``mlvae.group_size`` (``data.groups.eval_groups``),
    content accumulated over each group; ``loss/elbo_single``: the same images each alone
    (no accumulation). ``loss/pixel_mse``: reconstruction of single images.
  * ``probe/content_accuracy``, ``probe/style_accuracy``: a logistic regression
    (``metrics.linear_probe_accuracy``) fitted on the train split's single-image posterior
    means reads the group label of test images from their content mean, and from their style
    mean (content should be high, style near ``probe/chance``, the majority-class rate);
    ``probe/content_accuracy_grouped``: the same content classifier on the content accumulated
    over each test image's group. Only when the test groups occur in train (MNIST's digits).
  * ``probe/style_accuracy_sampled``, ``probe/content_accuracy_grouped_sampled``: the public
    port's protocol (../shared/MODELS.md sec. 3, its 42% and 99.7%): a two-layer MLP
    (``metrics.mlp_probe_accuracy``) reads the label from one posterior sample per image, style
    s ~ q(s|x) and content c ~ q(c_G|X_G) drawn once per group of ``group_size`` (train and test).
  * ``matching/content_accuracy_k{1,2,5,10}`` and ``matching/style_accuracy_k...``: per test
    group, a prototype from k gallery images (their accumulated content; the mean of their
    style means), and each of the group's other images (at most 100) matched to the nearest
    prototype (``metrics.nearest_prototype_accuracy``); ``matching/chance`` = 1 / groups,
    ``matching/unseen_groups`` = 1.0 when no test group occurs in train (CelebA identities).
  * ``swap/content_follows_column``, ``swap/style_follows_row``: every (row group, column
    group) pair of up to 24 test groups is decoded from the style of the row group's image and
    the content accumulated over the column group's gallery, then re-encoded: the fraction of
    swaps whose content is nearest to the column group's content (among the columns), and
    whose style is nearest to the row image's style (among the rows); ``swap/chance``.
  * the sample and reconstruction quality scores of every method.

  Figures: ``swap.png`` (row r, column c: Dec(style of the row image, content accumulated over
  the column image's group; the diagonal is the row's own group)), ``accumulation.png`` (per row a test group's 10 gallery images,
  then Dec(style of the first, content accumulated from 1, 2, 5, 10 of them)),
  ``samples.png``, ``reconstructions.png`` and, with at most 10 groups, ``latent_content.png`` and
  ``latent_style.png`` (PCA of the test means coloured by group).

  Raises:
    ValueError: the test split has fewer than two groups with ``group_size`` (and 11) images.
  """
  from vaegan_jax.data import groups  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import mlvae  # pylint: disable=import-outside-toplevel
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x, k = c.eval.batch_size, ctx.test["image"], c.mlvae.group_size
  test_values = groups.group_values(ctx.test, c.mlvae.group_by, c.data.name)
  train_values = groups.group_values(ctx.train, c.mlvae.group_by, c.data.name)
  test_groups = groups.eval_groups(test_values, k, c.seed)
  if len(test_groups) < 2:
    raise ValueError(f"{c.data.name}:{c.data.eval_split} has fewer than two groups of {k}: evaluate on a larger "
                     "split (--config.data.eval_split at training) or a smaller mlvae.group_size")
  grouped = _mean_terms(ctx, x[test_groups], max(1, bs // k))       # u8[G, K, h, w, c]
  single = _mean_terms(ctx, x[test_groups.reshape(-1, 1)], bs)     # the same images, groups of one
  out = {f"loss/{name}_grouped": v for name, v in grouped.items()}
  out.update({f"loss/{name}_single": v for name, v in single.items()})
  ctx.progress.update()

  encode = jax.jit(lambda im: mlvae.encode(models, c, state, im))

  def codes(arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Style mu, style logvar, content mu, content logvar of each image alone."""
    parts = [jax.device_get(encode(arrays[i:i + bs])) for i in range(0, len(arrays), bs)]
    return tuple(np.concatenate([p[j][h] for p in parts]) for j in (0, 1) for h in (0, 1))

  def posterior(mu: np.ndarray, logvar: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The content posterior accumulated over each row of ``idx`` (i64[G, n]): (mu, logvar) f32[G, d]."""
    return tuple(np.asarray(a) for a in mlvae.product_of_gaussians(mu[idx], logvar[idx], axis=1))

  style, style_logvar, content, content_logvar = codes(x)
  accumulate = lambda idx: posterior(content, content_logvar, idx)[0]  # noqa: E731
  if np.isin(test_values, train_values).all():
    rng = np.random.default_rng(c.seed)
    chosen = np.sort(rng.choice(len(train_values), min(len(train_values), 20_000), replace=False))
    train_style, train_style_logvar, train_content, train_content_logvar = codes(ctx.train["image"][chosen])
    labels = train_values[chosen]
    member_content = np.empty_like(content)
    member_content[test_groups.reshape(-1)] = np.repeat(accumulate(test_groups), k, axis=0)
    in_group = test_groups.reshape(-1)
    out["probe/content_accuracy"] = metrics.linear_probe_accuracy(train_content, labels, content, test_values, c.seed)
    out["probe/style_accuracy"] = metrics.linear_probe_accuracy(train_style, labels, style, test_values, c.seed)
    out["probe/content_accuracy_grouped"] = metrics.linear_probe_accuracy(
        train_content, labels, member_content[in_group], test_values[in_group], c.seed)
    out["probe/chance"] = float(np.max(np.unique(test_values, return_counts=True)[1]) / len(test_values))
    # The public port's protocol: an MLP reads the label from one posterior sample per image, the
    # content drawn once per group from the posterior accumulated over it (train groups of k too).
    draw = lambda mu, logvar: mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)  # noqa: E731
    train_groups = groups.eval_groups(labels, k, c.seed)          # i64[G, k] into the chosen images
    group_draw = lambda mu, logvar, idx: np.repeat(draw(*posterior(mu, logvar, idx)), k, axis=0)  # noqa: E731
    out["probe/style_accuracy_sampled"] = metrics.mlp_probe_accuracy(
        draw(train_style, train_style_logvar), labels, draw(style, style_logvar), test_values, c.seed)
    out["probe/content_accuracy_grouped_sampled"] = metrics.mlp_probe_accuracy(
        group_draw(train_content, train_content_logvar, train_groups), labels[train_groups.reshape(-1)],
        group_draw(content, content_logvar, test_groups), test_values[in_group], c.seed)
  ctx.progress.update()

  rng = np.random.default_rng(c.seed + 1)
  gallery_size = max(MATCHING_GALLERY)
  members = [rng.permutation(np.flatnonzero(test_values == v)) for v in np.unique(test_values)]
  members = [m for m in members if len(m) > gallery_size]
  if len(members) < 2:
    raise ValueError(f"{c.data.name}:{c.data.eval_split} has fewer than two groups of more than {gallery_size} images "
                     "to match queries against")
  gallery = np.stack([m[:gallery_size] for m in members])
  queries = np.concatenate([m[gallery_size:gallery_size + 100] for m in members])
  query_labels = test_values[queries]
  for n in MATCHING_GALLERY:
    out[f"matching/content_accuracy_k{n}"] = metrics.nearest_prototype_accuracy(
        content[queries], query_labels, accumulate(gallery[:, :n]), test_values[gallery[:, 0]])
    out[f"matching/style_accuracy_k{n}"] = metrics.nearest_prototype_accuracy(
        style[queries], query_labels, style[gallery[:, :n]].mean(1), test_values[gallery[:, 0]])
  out["matching/chance"] = 1.0 / len(members)
  out["matching/num_groups"] = float(len(members))
  out["matching/unseen_groups"] = float(not np.isin(test_values, train_values).any())
  ctx.progress.update()

  decode = jax.jit(lambda s, cc: mlvae.decode(models, state, s, cc))
  _, test_embedding = domain_classifier.predict(ctx.classifier, x, bs)
  prior = np.asarray(mlvae.prior_sample(c, jax.random.key(c.seed + 2), len(x)))
  sample = jax.jit(lambda z: mlvae.sample(models, state, z))    # z = [style, content]
  samples = _batched(sample, prior, bs)
  out.update(_quality(ctx, "samples", samples, test_embedding))
  recon = _batched(sample, np.concatenate([style, content], axis=1), bs)
  out.update(_quality(ctx, "reconstructions", recon, test_embedding))
  out["loss/pixel_mse"] = float(np.mean(np.square(recon - (x.astype(np.float32) / 127.5 - 1.0))))
  rows = c.train.num_image_rows
  _save(ctx, "samples", images.make_grid(images.to_uint8(samples[:rows * rows]), rows))
  n = rows * rows // 2
  _save(ctx, "reconstructions", images.make_grid(images.interleave_rows(x[:n], images.to_uint8(recon[:n]), rows), rows))

  # Swaps: row r's style (the second gallery image of group r) with the content accumulated over
  # group c's gallery, for every pair of up to 24 groups; re-encoding each swap tells whether its
  # content still matches group c and its style still matches row r's image.
  n_swap = min(24, len(gallery))
  row_images, column_content = gallery[:n_swap, 1], accumulate(gallery[:n_swap])
  rows_of, columns_of = np.divmod(np.arange(n_swap * n_swap), n_swap)
  swap = _batched(lambda rc: decode(style[row_images][rc[:, 0]], column_content[rc[:, 1]]),
                  np.stack([rows_of, columns_of], 1), bs)
  swap_u8 = images.to_uint8(swap)
  swap_style, _, swap_content, _ = codes(swap_u8)
  out["swap/content_follows_column"] = metrics.nearest_prototype_accuracy(
      swap_content, columns_of, column_content, np.arange(n_swap))
  out["swap/style_follows_row"] = metrics.nearest_prototype_accuracy(
      swap_style, rows_of, style[row_images], np.arange(n_swap))
  out["swap/chance"] = 1.0 / n_swap
  shown = min(8, n_swap)
  cells = swap_u8.reshape(n_swap, n_swap, *x.shape[1:])[:shown, :shown].reshape(-1, *x.shape[1:])
  _save(ctx, "swap", _swap_grid(x[row_images[:shown]], x[gallery[:shown, 0]], cells))
  steps = [decode(style[gallery[:shown, 0]], accumulate(gallery[:shown, :n])) for n in MATCHING_GALLERY]
  decoded = images.to_uint8(np.stack([np.asarray(s) for s in steps], axis=1))   # [shown, 4, h, w, c]
  panel = np.concatenate([x[gallery[:shown]], decoded], axis=1)
  _save(ctx, "accumulation", images.make_grid(panel.reshape(-1, *x.shape[1:]), gallery_size + len(MATCHING_GALLERY)))
  if len(np.unique(test_values)) <= 10:
    for name, latents in (("content", content), ("style", style)):
      latent_figure(latents, test_values, os.path.join(ctx.outdir, f"latent_{name}.png"),
                    f"ML-VAE {name} means, {c.data.name} test, by {c.mlvae.group_by}")
  ctx.progress.update()
  return out


WALK_STEPS = 7              # points of a single-label latent walk (pairs: 5 x 5)


def _label_predictions(ctx: EvalContext, images_: np.ndarray, labels: Sequence[str]) -> np.ndarray:
  """bool[n, L]: the domain classifier's verdict on each CCVAE label of u8 or f32 images:
  attribute probability > 0.5 (CelebA), or predicted class == the label's class (digits)."""
  probs, _ = domain_classifier.predict(ctx.classifier, images_, ctx.config.eval.batch_size)
  if ctx.classifier.kind == "multilabel":
    return probs[:, [list(ctx.classifier.output_names).index(n) for n in labels]] > 0.5
  return probs.argmax(-1)[:, None] == np.asarray([int(n) for n in labels])[None]


def evaluate_ccvae(ctx: EvalContext) -> dict:
  """Metrics and figures of a CCVAE checkpoint (Joy et al. 2021, sec. 5).

  * ``accuracy/<label>`` and ``accuracy/mean``: test accuracy of q(y|x) (the classifier on the
    posterior mean of z_c, threshold 1/2) per label and averaged; ``accuracy/majority_mean``:
    always predicting each label's majority value in the train split; ``accuracy/all_labels``:
    every label of the image right; for one-hot labels (digits) ``accuracy/class``: the most
    probable label is the true class.
  * ``loss/elbo``, ``loss/llike``, ``loss/kl``: the unsupervised objective on the test split
    (nats per image; no labels used).
  * Interventions, on the first ``eval.intervention_images`` test images: for each label, z_c's block set to the
    conditional prior's location for y = 1 and for y = 0 (for one-hot labels such as digits,
    y_i = 1 also sets every other block to its y = 0 location), decoded, and scored by the
    independently trained domain classifier (``classifier_for``; CelebA: its attribute,
    digits: its predicted class). ``intervention/<label>/to_1``, ``to_0``: how often it
    agrees with the value set; ``intervention/agreement``: the mean over labels and values;
    ``intervention/flip_rate``: among (image, label, value) whose test image the classifier
    judged otherwise, how often the intervention flipped its verdict;
    ``intervention/flip_rate_from_reconstruction``: the same among the cases where the
    classifier judged Dec(mu) otherwise (the intervention against the decoder's own output,
    its blur held equal); ``classifier/<label>/recall_1``, ``recall_0``: how often the
    classifier judges real test images whose true label is that value so, and
    ``intervention/flip_rate_ceiling``: the flip rate a perfect intervention (a real image with
    the value set) would score, each flip-rate case counted at that recall (cases of a value no
    test image has are left out): the most this classifier can show;
    ``intervention/reconstruction_agreement``: how often Dec(mu) keeps
    the verdict on the test image, and ``reconstruction/<label>/keeps_1``, ``keeps_0``: the
    same per label among the images judged 1 (or 0), the decoder's fidelity to each value,
    which bounds what an intervention toward it can show the classifier;
    ``intervention/<label>/own_q_to_1``, ``own_q_to_0``: the CCVAE's own q(y_i = value | z_c)
    at the location set (its own verdict on the intervention), ``intervention/own_agreement``:
    the share of the 2L (label, value) pairs where that verdict is the value set.
  * Characteristic swaps of image pairs (z_c exchanged, z_\\c kept), scored the same way, on the
    labels where the two images' verdicts differ: ``swap/characteristics_follow_source`` (the
    swap takes the verdict of the image its z_c came from) and ``swap/keeps_own`` (it keeps its own).

  Figures: ``latent_walk.png`` (a row per label: the test image, then its block walked from
  beyond p(z_c|y=0) to beyond p(z_c|y=1), ``ccvae.walk_range``), ``latent_walk_<a>_<b>.png``
  for each ``ccvae.walk_pairs`` (5 x 5: label a down, label b across),
  ``conditional_generation.png`` (a row per test image: the image, then samples of z_c ~
  p(z_c|y) and z_\\c ~ N(0, I) for its true labels y), ``characteristic_swaps.png`` (a row per
  pair: a, b, Dec(mu_a), Dec(mu_b), a with b's characteristics, b with a's), ``samples.png``
  and ``reconstructions.png``. The supervised-only baseline (``ccvae.objective =
  "classifier"``) has no generative model: it reports the accuracies only.
  """
  from vaegan_jax.data import supervision  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import ccvae  # pylint: disable=import-outside-toplevel
  c, state, models = ctx.config, ctx.state, ctx.run.models
  bs, x, names = c.eval.batch_size, ctx.test["image"], list(c.ccvae.labels)
  attribute_names = ctx.run.info.attribute_names
  y_test = supervision.label_matrix(ctx.test, names, attribute_names, c.data.name) > 0.5
  y_train = supervision.label_matrix(ctx.train, names, attribute_names, c.data.name) > 0.5
  probs = _batched(jax.jit(lambda im: ccvae.classify(models, c, state, im)), x, bs)
  accuracy = np.mean((probs > 0.5) == y_test, axis=0)
  out = {f"accuracy/{n}": float(a) for n, a in zip(names, accuracy)}
  out["accuracy/mean"] = float(accuracy.mean())
  out["accuracy/all_labels"] = float(np.mean(np.all((probs > 0.5) == y_test, axis=1)))
  if ctx.classifier.kind == "categorical" and y_test.sum(1).max() == 1:   # one-hot labels: the class itself
    out["accuracy/class"] = float(np.mean(probs.argmax(1) == y_test.argmax(1)))
  out["accuracy/majority_mean"] = float(np.mean((y_train.mean(0) > 0.5)[None] == y_test))
  out["supervision_rate"] = float(c.ccvae.supervision_rate)
  out["labelled_examples"] = float(supervision.labelled_count(len(ctx.train["image"]), c.ccvae.supervision_rate))
  ctx.progress.update()
  if c.ccvae.objective == "classifier":
    ctx.progress.update(3)
    return out
  out.update({f"loss/{k}": v for k, v in _mean_terms(ctx, x, bs).items()})
  ctx.progress.update()

  cd, block = ccvae.characteristic_dim(c), c.ccvae.block_dim
  encode = jax.jit(lambda im: ccvae.encode(models, c, state, im)[0])
  decode = jax.jit(lambda z: ccvae.decode(models, state, z))
  prior = ccvae.prior_parameters(state)
  # the model's own verdict on its interventions: q(y_i | block i at p(z_c|y_i)'s location)
  own = {value: np.asarray(ccvae.characteristic_probs(models, state, prior[key].reshape(1, -1)))[0]
         for value, key in ((1, "loc_true"), (0, "loc_false"))}
  for i, name in enumerate(names):
    out[f"intervention/{name}/own_q_to_1"], out[f"intervention/{name}/own_q_to_0"] = float(own[1][i]), float(1 - own[0][i])
  out["intervention/own_agreement"] = float(np.mean(np.concatenate([own[1] > 0.5, own[0] < 0.5])))
  n = min(c.eval.intervention_images, len(x))
  mu = _batched(encode, x[:n], bs)
  test_verdict = _label_predictions(ctx, x, names)                       # bool[test, L]
  verdict = test_verdict[:n]                                             # bool[n, L]
  recon = _batched(decode, mu, bs)
  recon_verdict = _label_predictions(ctx, recon, names)                  # bool[n, L]: the verdict on Dec(mu)
  out["intervention/reconstruction_agreement"] = float(np.mean(recon_verdict == verdict))
  agree, flips, candidates, flips_dec, candidates_dec, ceiling, ceiling_cases = [], 0, 0, 0, 0, 0.0, 0
  exclusive = ctx.classifier.kind == "categorical"   # one-hot labels (digits): turning one on turns the rest off
  for i, name in enumerate(names):
    for value in (1, 0):
      judged = verdict[:, i] == bool(value)
      if judged.any():
        out[f"reconstruction/{name}/keeps_{value}"] = float(np.mean(recon_verdict[judged, i] == bool(value)))
      z = mu.copy()
      if value and exclusive:
        z[:, :cd] = prior["loc_false"].reshape(-1)
      z[:, i * block:(i + 1) * block] = prior["loc_true" if value else "loc_false"][i]
      now = _label_predictions(ctx, _batched(decode, z, bs), names)[:, i]
      out[f"intervention/{name}/to_{value}"] = float(np.mean(now == bool(value)))
      agree.append(out[f"intervention/{name}/to_{value}"])
      flips += int(np.sum(now[~judged] == bool(value)))
      candidates += int(np.sum(~judged))
      truly = y_test[:, i] == bool(value)   # the classifier's recall of this value on real test images:
      if truly.any():                       # how often it would agree with a perfect intervention
        recall = float(np.mean(test_verdict[truly, i] == bool(value)))
        out[f"classifier/{name}/recall_{value}"] = recall
        ceiling += recall * np.sum(~judged)
        ceiling_cases += int(np.sum(~judged))
      other_dec = recon_verdict[:, i] != bool(value)
      flips_dec += int(np.sum(now[other_dec] == bool(value)))
      candidates_dec += int(np.sum(other_dec))
  out["intervention/agreement"] = float(np.mean(agree))
  out["intervention/flip_rate"] = flips / max(candidates, 1)
  out["intervention/flip_rate_from_reconstruction"] = flips_dec / max(candidates_dec, 1)
  out["intervention/flip_rate_ceiling"] = float(ceiling / max(ceiling_cases, 1))

  half = n // 2
  a, b = mu[:half], mu[half:2 * half]
  swap_ab = np.concatenate([b[:, :cd], a[:, cd:]], 1)                    # a with b's characteristics
  swap_ba = np.concatenate([a[:, :cd], b[:, cd:]], 1)
  swapped = _label_predictions(ctx, _batched(decode, np.concatenate([swap_ab, swap_ba]), bs), names)
  source = np.concatenate([verdict[half:2 * half], verdict[:half]])     # where each swap's z_c came from
  own = np.concatenate([verdict[:half], verdict[half:2 * half]])
  differ = source != own
  out["swap/characteristics_follow_source"] = float(np.mean(swapped[differ] == source[differ]))
  out["swap/keeps_own"] = float(np.mean(swapped[differ] == own[differ]))
  ctx.progress.update()

  # figures
  rows = c.train.num_image_rows
  draws = np.asarray(ccvae.prior_sample(c, jax.random.key(c.seed + 2), rows * rows))
  _save(ctx, "samples", images.make_grid(images.to_uint8(ccvae.sample(models, state, draws)), rows))
  m = rows * rows // 2
  _save(ctx, "reconstructions", images.make_grid(images.interleave_rows(x[:m], images.to_uint8(recon[:m]), rows), rows))
  source_z = mu[0]
  walk = []
  for i in range(len(names)):
    z = np.repeat(source_z[None], WALK_STEPS, 0)
    z[:, i * block:(i + 1) * block] = ccvae.walk_range(prior, i, WALK_STEPS)
    walk.append(np.concatenate([x[:1], images.to_uint8(decode(z))]))
  _save(ctx, "latent_walk", images.make_grid(np.concatenate(walk), WALK_STEPS + 1))
  for first, second in c.ccvae.walk_pairs:
    i, j = names.index(first), names.index(second)
    z = np.repeat(source_z[None], 25, 0)
    rows_of, cols_of = np.divmod(np.arange(25), 5)
    z[:, i * block:(i + 1) * block] = ccvae.walk_range(prior, i, 5)[rows_of]
    z[:, j * block:(j + 1) * block] = ccvae.walk_range(prior, j, 5)[cols_of]
    _save(ctx, f"latent_walk_{first}_{second}", images.make_grid(images.to_uint8(decode(z)), 5))
  shown, per_row = 8, 7
  noise = jax.random.normal(jax.random.key(c.seed + 3), (shown * per_row, c.model.latent_dim))
  z = ccvae.conditional_latents(models, state, jnp.asarray(np.repeat(y_test[:shown], per_row, 0), jnp.float32), noise)
  generated = images.to_uint8(decode(z)).reshape(shown, per_row, *x.shape[1:])
  _save(ctx, "conditional_generation",
        images.make_grid(np.concatenate([x[:shown, None], generated], 1).reshape(-1, *x.shape[1:]), per_row + 1))
  pairs = min(shown, half)
  decoded = images.to_uint8(_batched(decode, np.concatenate(
      [a[:pairs], b[:pairs], swap_ab[:pairs], swap_ba[:pairs]]), bs)).reshape(4, pairs, *x.shape[1:])
  panel = np.stack([x[:pairs], x[half:half + pairs], decoded[0], decoded[1], decoded[2], decoded[3]], 1)
  _save(ctx, "characteristic_swaps", images.make_grid(panel.reshape(-1, *x.shape[1:]), 6))
  ctx.progress.update()
  return out


# Method name -> evaluator. Later models register theirs here.
EVALUATORS: dict[str, Callable[[EvalContext], dict]] = {
    "vaegan": evaluate_vaegan_family,
    "vae": evaluate_vaegan_family,
    "gan": evaluate_vaegan_family,
    "tvae": evaluate_tvae,
    "aae": evaluate_aae,
    "semi_aae": evaluate_aae,
    "mlvae": evaluate_mlvae,
    "ccvae": evaluate_ccvae,
}
_STAGES = 5  # progress-bar stages: data + classifier, then the evaluator's four


def evaluate(workdir: str, step: int | None = None) -> tuple[dict, str]:
  """Evaluates a checkpoint of ``workdir`` and writes ``workdir/eval/<step>/``.

  Args:
    workdir: a ``train.py`` workdir.
    step: checkpoint step; None for the newest.

  Returns:
    (metrics, folder): the metrics as written to ``<folder>/metrics.json``.

  Raises:
    FileNotFoundError, ValueError: as ``restore_run``; ValueError also for a method without
      an evaluator. On any error nothing under ``workdir`` changes.
  """
  run, state, step = restore_run(workdir, step)
  evaluator = EVALUATORS.get(run.config.method)
  if evaluator is None:
    raise ValueError(f"{workdir} holds a {run.config.method!r} run, which eval.py cannot evaluate; "
                     f"it evaluates {sorted(EVALUATORS)}")
  eval_root = os.path.join(workdir, "eval")
  os.makedirs(eval_root, exist_ok=True)
  final = os.path.join(eval_root, str(step))
  tmp = tempfile.mkdtemp(prefix=f".{step}.", dir=eval_root)
  try:
    with tqdm(total=_STAGES, desc=f"eval {run.config.method}/{run.config.data.name} step {step}",
              unit="stage", dynamic_ncols=True) as progress:
      test = data.split_arrays(run.config, run.config.data.eval_split)
      train = data.split_arrays(run.config, run.config.data.train_split)
      classifier = classifier_for(run.config, train, test)
      progress.update()
      ctx = EvalContext(run, state, step, test, train, classifier, tmp, progress)
      results = evaluator(ctx)
    results = {"step": step, "method": run.config.method, "dataset": run.config.data.name,
               "num_test": int(len(test["image"])), "classifier": classifier.summary(), **results}
    with open(os.path.join(tmp, "metrics.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1, sort_keys=True)
    if os.path.isdir(final):
      shutil.rmtree(final)
    os.replace(tmp, final)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)
    if not os.listdir(eval_root):
      os.rmdir(eval_root)
  return results, final


# Rows of the comparison table: (metrics.json key, label), in the paper's order of concerns.
COMPARISON_ROWS = (
    ("classifier.test_accuracy", "domain classifier test accuracy"),
    ("samples/frechet_distance", "FD(test, samples)"),
    ("samples/kernel_distance", "KID(test, samples)"),
    ("reconstructions/frechet_distance", "FD(test, reconstructions)"),
    ("reconstructions/kernel_distance", "KID(test, reconstructions)"),
    ("samples/sharpness_ratio", "sharpness of samples / test"),
    ("reconstructions/sharpness_ratio", "sharpness of reconstructions / test"),
    ("reconstructions/label_accuracy", "classifier agrees with the label on reconstructions"),
    ("loss/pixel_mse", "pixel MSE of Dec(mu) ([-1, 1])"),
    ("loss/dis_l_mse", "Dis_l MSE of Dec(mu)"),
    ("triplet/accuracy", "triplet accuracy of test means"),
    ("parzen/log_likelihood", "Parzen log-likelihood of test (nats)"),
    ("classification/test_error", "test classification error"),
    ("probe/content_accuracy", "group label from content (logistic reg.)"),
    ("probe/content_accuracy_grouped", "group label from accumulated content"),
    ("probe/style_accuracy", "group label from style (logistic reg.)"),
    ("probe/chance", "group label: majority-class rate"),
    ("matching/content_accuracy_k10", "matching from content, 10-image gallery"),
    ("matching/style_accuracy_k10", "matching from style, 10-image gallery"),
    ("matching/chance", "matching: chance"),
    ("swap/content_follows_column", "swaps whose content matches the content source"),
    ("swap/style_follows_row", "swaps whose style matches the style source"),
    ("loss/elbo_grouped", "test ELBO, groups accumulated (nats/image)"),
    ("loss/elbo_single", "test ELBO, images alone (nats/image)"),
    ("accuracy/mean", "q(y\\|x): mean per-label test accuracy"),
    ("accuracy/class", "q(y\\|x): most probable label is the class"),
    ("intervention/flip_rate", "interventions that flip the classifier"),
    ("intervention/flip_rate_from_reconstruction", "interventions that flip its verdict on Dec(mu)"),
    ("intervention/flip_rate_ceiling", "what a perfect intervention would flip"),
    ("swap/characteristics_follow_source", "characteristic swaps that follow their z_c"),
    ("anomaly/normal_class", "anomaly detection: normal class"),
    ("anomaly/roc_auc_reconstruction", "ROC AUC, reconstruction error"),
    ("anomaly/roc_auc_combined", "ROC AUC, reconstruction + prior"),
    ("loss/pixel_bce", "Bernoulli NLL of Dec(mu) (nats)"),
    ("loss/elbo", "ELBO, the model's own (nats)"),
    ("loss/kl", "KL (nats)"),
    ("loss/elbo_pixel", "pixel ELBO, std 0.1 (nats)"),
    ("reconstructions/attribute_cosine", "attribute cosine of reconstructions"),
    ("test/attribute_cosine", "attribute cosine of test images"),
)


def _lookup(results: dict, key: str):
  """``results[key]``, or ``results[head][rest]`` for a dotted ``head.rest``; None if absent."""
  if key in results:
    return results[key]
  head, _, rest = key.partition(".")
  section = results.get(head)
  return section.get(rest) if isinstance(section, dict) else None


def compare(workdirs: list[str], out: str) -> str:
  """Evaluates the newest checkpoint of each workdir (reusing a finished ``eval/<step>``) and compares them.

  Writes ``out/comparison.md`` (the table), ``out/comparison.png`` (per run that has them, its
  reconstructions beside its samples, named by the run's method and folder) and, when
  several runs have one (TVAE and its VAE), ``out/latent_pca.png``: their latent PCA
  figures side by side.

  Args:
    workdirs: ``train.py`` workdirs, e.g. of a VAE, a GAN and a VAE/GAN with the same budget.
    out: folder for the table and the figure.

  Returns:
    The table as Markdown, one column per run.

  Raises:
    As ``evaluate``.
  """
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
  columns = []
  for workdir in workdirs:
    steps = []
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
      checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), create=False, alone=True)
      steps = checkpointer.all_steps()
      checkpointer.close()
    done = os.path.join(workdir, "eval", str(steps[-1]), "metrics.json") if steps else ""
    if done and os.path.isfile(done):
      with open(done, encoding="utf-8") as f:
        results, folder = json.load(f), os.path.dirname(done)
    else:
      results, folder = evaluate(workdir)
    columns.append((workdir, results, folder))
  header = "| metric | " + " | ".join(f"{r['method']} ({os.path.basename(os.path.normpath(w))}, step {r['step']})"
                                        for w, r, _ in columns) + " |"
  lines = [header, "|---" * (len(columns) + 1) + "|"]
  for key, label in COMPARISON_ROWS:
    values = [_lookup(r, key) for _, r, _ in columns]
    if all(v is None for v in values):
      continue
    lines.append(f"| {label} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in values) + " |")
  table = "\n".join(lines)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "comparison.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  panels = []
  for workdir, results, folder in columns:
    parts = [Image.open(os.path.join(folder, f"{n}.png")).convert("RGB")
             for n in ("reconstructions", "samples", "latent_pca", "latent") if os.path.isfile(os.path.join(folder, f"{n}.png"))]
    if not parts:   # a run without figures (the CCVAE's supervised-only baseline): in the table only
      continue
    height = max(p.height for p in parts)
    panel = Image.new("RGB", (sum(p.width for p in parts) + 4 * (len(parts) - 1), height + 14), "white")
    x = 0
    for p in parts:
      panel.paste(p, (x, 14))
      x += p.width + 4
    ImageDraw.Draw(panel).text((2, 1), f"{results['method']} ({os.path.basename(os.path.normpath(workdir))}) "
                               f"step {results['step']}", fill="black")
    panels.append(panel)
  if panels:
    figure = Image.new("RGB", (max(p.width for p in panels), sum(p.height + 6 for p in panels)), "white")
    y = 0
    for p in panels:
      figure.paste(p, (0, y))
      y += p.height + 6
    figure.save(os.path.join(out, "comparison.png"))
  latents = [Image.open(os.path.join(folder, "latent_pca.png")).convert("RGB") for _, _, folder in columns
             if os.path.isfile(os.path.join(folder, "latent_pca.png"))]
  if len(latents) > 1:   # TVAE beside its VAE: the test means of each run, side by side
    side = Image.new("RGB", (sum(p.width for p in latents), max(p.height for p in latents)), "white")
    x = 0
    for p in latents:
      side.paste(p, (x, 0))
      x += p.width
    side.save(os.path.join(out, "latent_pca.png"))
  return table
