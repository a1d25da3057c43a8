"""The domain classifier that evaluation scores images with, trained once per dataset and cached.

Inception weights cannot be downloaded here, and on MNIST-like or small data a classifier of
the dataset itself is the accepted feature space for a Fréchet distance (e.g. the "FID with
a LeNet" of Lucic et al. 2018 and many VAE papers). ``load_or_train`` trains a small CNN on
the training split (digits: the 10 classes; CelebA: the 40 binary attributes, which then also
serve as the attribute regressor of Larsen et al. 2016, sec. 5.2), reports its test accuracy,
and caches it under ``<cache_dir>/classifiers/<dataset>-<hash>/`` keyed by a SHA-256 of the
training data and of the classifier's settings: changing either trains a new one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from vaegan_jax import checkpoint

CACHE_ENV = "VAEGAN_CACHE_DIR"
_VERSION = "classifier-v1"  # bump when the architecture or training changes: old caches are ignored


class ImageClassifier(nn.Module):
  """A small CNN: stride-2 3x3 convolutions down to about 4x4, dense ``features`` (the embedding), dense ``outputs``.

  Attributes:
    outputs: number of logits (10 classes, or 40 attributes).
    features: width of the embedding used for Fréchet / kernel distances.
    channels: conv widths; as many are used as halvings bring the image to <= 4 px.
  """

  outputs: int
  features: int = 128
  channels: Sequence[int] = (32, 64, 128, 128, 128)

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """f32[batch, h, w, c] in [-1, 1] -> (logits f32[batch, outputs], embedding f32[batch, features])."""
    h = x
    steps = max(1, math.ceil(math.log2(max(x.shape[1:3]) / 4)))
    for f in self.channels[:steps]:
      h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    embedding = nn.relu(nn.Dense(self.features)(h))
    return nn.Dense(self.outputs)(embedding), embedding


@dataclasses.dataclass(frozen=True)
class DomainClassifier:
  """A trained classifier with its provenance.

  Attributes:
    kind: "categorical" (softmax over classes) or "multilabel" (one sigmoid per attribute).
    output_names: class or attribute names, one per logit.
    params: the Flax parameters.
    test_accuracy: accuracy on the test split (multilabel: mean over attributes), in [0, 1].
    majority_accuracy: the same for always predicting the training split's majority, in [0, 1].
    data_sha256: hash of the training data and settings it was trained on.
    path: its cache folder.
  """

  kind: str
  output_names: tuple[str, ...]
  params: dict
  test_accuracy: float
  majority_accuracy: float
  data_sha256: str
  path: str

  def apply(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """f32[batch, h, w, c] in [-1, 1] -> (probabilities f32[batch, outputs], embedding f32[batch, 128]).

    Probabilities are softmax (categorical) or per-output sigmoid (multilabel), in [0, 1].
    Jitted once per kind, output count and batch shape.
    """
    return _classify(self.params, images, kind=self.kind, outputs=len(self.output_names))

  def summary(self) -> dict:
    return {"kind": self.kind, "output_names": list(self.output_names), "test_accuracy": self.test_accuracy, "majority_accuracy": self.majority_accuracy,
            "data_sha256": self.data_sha256, "path": self.path}


@functools.partial(jax.jit, static_argnames=("kind", "outputs"))
def _classify(params: dict, images: jax.Array, kind: str, outputs: int) -> tuple[jax.Array, jax.Array]:
  logits, embedding = ImageClassifier(outputs=outputs).apply({"params": params}, images)
  probs = jax.nn.softmax(logits) if kind == "categorical" else jax.nn.sigmoid(logits)
  return probs, embedding


def _to_float(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32) / 127.5 - 1.0


def _accuracy(kind: str, probs: np.ndarray, targets: np.ndarray) -> float:
  if kind == "categorical":
    return float(np.mean(np.argmax(probs, -1) == targets))
  return float(np.mean((probs > 0.5) == targets.astype(bool)))


def _majority_accuracy(kind: str, train_targets: np.ndarray, test_targets: np.ndarray) -> float:
  if kind == "categorical":
    return float(np.mean(test_targets == np.bincount(train_targets).argmax()))
  majority = train_targets.astype(bool).mean(axis=0) > 0.5
  return float(np.mean(test_targets.astype(bool) == majority))


def data_hash(train_images: np.ndarray, train_targets: np.ndarray, epochs: int, seed: int) -> str:
  """SHA-256 (hex) of the training data, the settings and the classifier version."""
  h = hashlib.sha256(f"{_VERSION}|epochs={epochs}|seed={seed}|{train_images.shape}|{train_targets.shape}".encode())
  h.update(np.ascontiguousarray(train_images).tobytes())
  h.update(np.ascontiguousarray(train_targets).tobytes())
  return h.hexdigest()


def predict(classifier: DomainClassifier, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
  """Probabilities and embeddings of u8[n, h, w, c] images (or f32 in [-1, 1]), batched on the device."""
  probs, embeddings = [], []
  for i in range(0, len(images), batch_size):
    chunk = images[i:i + batch_size]
    chunk = _to_float(chunk) if chunk.dtype == np.uint8 else np.asarray(chunk, np.float32)
    p, e = jax.device_get(classifier.apply(chunk))
    probs.append(p)
    embeddings.append(e)
  return np.concatenate(probs), np.concatenate(embeddings)


def train(kind: str, train_images: np.ndarray, train_targets: np.ndarray, num_outputs: int,
          epochs: int, seed: int, batch_size: int = 128, learning_rate: float = 1e-3) -> dict:
  """Trains ``ImageClassifier`` with Adam on cross-entropy; returns its parameters.

  Args:
    kind: "categorical" (targets i[n] class ids) or "multilabel" (targets bool[n, num_outputs]).
    train_images: u8[n, h, w, c].
    train_targets: as ``kind`` says.
    num_outputs: number of logits.
    epochs: passes over the data, each in a fresh seeded order.
    seed: initialisation and order.

  Returns:
    The Flax parameter tree.
  """
  module = ImageClassifier(outputs=num_outputs)
  x0 = jnp.zeros((1, *train_images.shape[1:]), jnp.float32)
  params = module.init(jax.random.key(seed), x0)["params"]
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  def loss_fn(p, x, y):
    logits, _ = module.apply({"params": p}, x)
    if kind == "categorical":
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y.astype(jnp.float32)))

  @jax.jit
  def step(p, o, x, y):
    grads = jax.grad(loss_fn)(p, x, y)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o

  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(train_images))
  for _ in range(epochs):
    order = rng.permutation(len(train_images))
    for i in range(0, len(order) - batch_size + 1, batch_size):
      idx = order[i:i + batch_size]
      params, opt_state = step(params, opt_state, _to_float(train_images[idx]), train_targets[idx])
  return params


def default_cache_dir() -> str:
  """``$VAEGAN_CACHE_DIR``, else ``~/.cache/vaegan_jax``."""
  return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "vaegan_jax"))


def _store(path: str, params, meta: dict) -> None:
  """Writes a cache entry into a private folder, then renames it to ``path`` in one step.

  Two processes that train the same classifier at once (two eval.py runs, parallel tests)
  cannot mix their files: the first rename wins and the other's identical entry is dropped.
  A folder without ``meta.json`` (a writer killed before the rename existed) is replaced.
  """
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
  try:
    with ocp.StandardCheckpointer(multiprocessing_options=checkpoint.this_process()) as ckpt:
      ckpt.save(os.path.join(tmp, "params"), jax.device_get(params))  # numpy: orbax refuses host-local
      ckpt.wait_until_finished()                                       # jax.Arrays with several processes
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
      json.dump(meta, f, indent=1)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "meta.json")):
      shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)
  except OSError:
    if not os.path.isfile(os.path.join(path, "meta.json")):
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)   # gone after a successful rename; another's entry won otherwise


def load_or_train(dataset: str, kind: str, output_names: Sequence[str], train_images: np.ndarray,
                  train_targets: np.ndarray, test_images: np.ndarray, test_targets: np.ndarray,
                  epochs: int, seed: int = 0, cache_dir: str | None = None) -> DomainClassifier:
  """The cached classifier for this exact training data, training (and caching) it if needed.

  Args:
    dataset: dataset name, used in the cache folder's name.
    kind: "categorical" or "multilabel".
    output_names: names of the outputs (classes or attributes).
    train_images, train_targets: the training split (u8 images; class ids or bool attributes).
    test_images, test_targets: the test split, for the reported accuracy.
    epochs: training epochs.
    seed: training seed.
    cache_dir: where ``classifiers/`` lives (default ``default_cache_dir()``).

  Returns:
    The ``DomainClassifier``.

  Raises:
    ValueError: for an unknown ``kind``.
  """
  if kind not in ("categorical", "multilabel"):
    raise ValueError(f"classifier kind {kind!r} is not 'categorical' or 'multilabel'")
  digest = data_hash(train_images, train_targets, epochs, seed)
  path = os.path.join(os.path.abspath(cache_dir or default_cache_dir()), "classifiers", f"{dataset}-{digest[:16]}")
  meta_path = os.path.join(path, "meta.json")
  module = ImageClassifier(outputs=len(output_names))
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, *train_images.shape[1:])))["params"])
  meta = None
  if os.path.isfile(meta_path):
    with open(meta_path, encoding="utf-8") as f:
      meta = json.load(f)
    if meta.get("data_sha256") != digest:
      meta = None
  if meta is not None:
    with ocp.StandardCheckpointer(multiprocessing_options=checkpoint.this_process()) as ckpt:
      params = ckpt.restore(os.path.join(path, "params"), abstract)
  else:
    params = train(kind, train_images, train_targets, len(output_names), epochs, seed)
    probe = DomainClassifier(kind, tuple(output_names), params, 0.0, 0.0, digest, path)
    probs, _ = predict(probe, test_images)
    meta = {"dataset": dataset, "kind": kind, "output_names": list(output_names), "epochs": epochs, "seed": seed,
            "test_accuracy": _accuracy(kind, probs, test_targets),
            "majority_accuracy": _majority_accuracy(kind, train_targets, test_targets),
            "num_train": int(len(train_images)), "num_test": int(len(test_images)), "data_sha256": digest}
    _store(path, params, meta)
  return DomainClassifier(kind, tuple(output_names), params, meta["test_accuracy"], meta["majority_accuracy"],
                          digest, path)
