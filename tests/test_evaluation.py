"""eval.py's building blocks: the cached domain classifier, restoring runs, clear errors that change nothing."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from vaegan_jax import config as config_lib
from vaegan_jax import domain_classifier, evaluators


def _snapshot(root: pathlib.Path) -> dict:
  return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _blobs(n, rng):
  """Two classes of 8x8 images: a bright top half or a bright bottom half, with noise."""
  labels = rng.integers(0, 2, n)
  images = rng.integers(0, 60, (n, 8, 8, 1))
  images[labels == 0, :4] += 180
  images[labels == 1, 4:] += 180
  return images.astype(np.uint8), labels


def test_domain_classifier_learns_caches_and_retrains_only_on_new_data(tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  (x, y), (xt, yt) = _blobs(512, rng), _blobs(128, rng)
  first = domain_classifier.load_or_train("blobs", "categorical", ("top", "bottom"), x, y, xt, yt,
                                          epochs=3, cache_dir=str(tmp_path))
  assert first.test_accuracy > 0.95 and first.majority_accuracy < 0.7
  def no_training(*args, **kwargs):
    raise AssertionError("the cached classifier should have been loaded")
  monkeypatch.setattr(domain_classifier, "train", no_training)
  again = domain_classifier.load_or_train("blobs", "categorical", ("top", "bottom"), x, y, xt, yt,
                                          epochs=3, cache_dir=str(tmp_path))
  assert again.path == first.path and again.test_accuracy == first.test_accuracy
  probs, embedding = domain_classifier.predict(again, xt)
  assert probs.shape == (128, 2) and embedding.shape == (128, 128)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
  x2 = x.copy()
  x2[0, 0, 0, 0] ^= 1   # one pixel of the training data changes: another hash, so it trains again
  with pytest.raises(AssertionError, match="cached"):
    domain_classifier.load_or_train("blobs", "categorical", ("top", "bottom"), x2, y, xt, yt,
                                    epochs=3, cache_dir=str(tmp_path))


def test_a_cache_entry_appears_whole_once_and_replaces_a_killed_writers_leftovers(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  path = str(tmp_path / "classifiers" / "blobs-0123")
  os.makedirs(os.path.join(path, "params"))    # a writer killed before its meta.json
  domain_classifier._store(path, {"w": np.arange(3.0)}, {"test_accuracy": 0.5})
  domain_classifier._store(path, {"w": np.ones(3)}, {"test_accuracy": 0.9})   # a second writer: the first stays
  assert json.loads((tmp_path / "classifiers" / "blobs-0123" / "meta.json").read_text()) == {"test_accuracy": 0.5}
  with ocp.StandardCheckpointer() as ckpt:
    np.testing.assert_array_equal(ckpt.restore(os.path.join(path, "params"))["w"], np.arange(3.0))
  assert os.listdir(tmp_path / "classifiers") == ["blobs-0123"]   # no temporary folder is left


def test_saved_config_gets_defaults_for_newer_keys_and_rejects_unknown_ones():
  saved = config_lib.to_json(config_lib.base_config())
  del saved["eval"]
  saved["model"]["latent_dim"] = 7
  c = config_lib.from_json(saved)
  assert c.model.latent_dim == 7 and c.eval.batch_size == config_lib.base_config().eval.batch_size
  assert isinstance(c.model.encoder_features, tuple)
  saved["model"]["flow_depth"] = 3
  with pytest.raises(ValueError, match="model.flow_depth is unknown"):
    config_lib.from_json(saved)




def test_eval_errors_are_clear_and_change_nothing(smoke_run, tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoints/ folder"):
    evaluators.evaluate(str(tmp_path / "missing"))
  assert not (tmp_path / "missing").exists()
  with pytest.raises(FileNotFoundError, match=r"saved: \[3, 6\]"):
    evaluators.evaluate(str(smoke_run), step=4)

  # A run of a model this version does not know.
  other = tmp_path / "other"
  shutil.copytree(smoke_run, other)
  config_file = other / "checkpoints" / "6" / "config" / "metadata"
  saved = json.loads(config_file.read_text())
  saved["method"] = "flow"
  config_file.write_text(json.dumps(saved))
  before = _snapshot(other)
  with pytest.raises(ValueError, match="method 'flow'.*cannot be rebuilt"):
    evaluators.evaluate(str(other))
  assert _snapshot(other) == before

  # A truncated checkpoint: the error offers the previous step.
  broken = tmp_path / "broken"
  shutil.copytree(smoke_run, broken)
  for blob in (broken / "checkpoints" / "6" / "state").rglob("d/*"):
    blob.write_bytes(blob.read_bytes()[:10])
  before = _snapshot(broken)
  with pytest.raises(ValueError, match=r"checkpoint 6 .* cannot be restored.*other saved steps: \[3\]"):
    evaluators.evaluate(str(broken))
  assert _snapshot(broken) == before


def test_evaluate_then_compare_reuses_the_results(smoke_run, tmp_path, monkeypatch):
  monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path / "cache"))
  results, folder = evaluators.evaluate(str(smoke_run))
  assert folder == str(smoke_run / "eval" / "6") and not [p for p in os.listdir(smoke_run / "eval") if p != "6"]
  assert json.loads((smoke_run / "eval" / "6" / "metrics.json").read_text()) == json.loads(json.dumps(results))
  calls = []
  monkeypatch.setattr(evaluators.registry, "evaluate", lambda *a, **k: calls.append(a))
  table = evaluators.compare([str(smoke_run), str(smoke_run)], str(tmp_path / "cmp"))
  assert not calls   # the finished eval/6 was reused
  fd_row = next(line for line in table.splitlines() if line.startswith("| FD(test, samples)"))
  assert fd_row.count(f"{results['samples/frechet_distance']:.4g}") == 2
  assert "| domain classifier test accuracy |" in table
  assert "| classifier agrees with the label on reconstructions |" in table
  assert (tmp_path / "cmp" / "comparison.png").is_file() and (tmp_path / "cmp" / "comparison.md").is_file()


def test_reconstruction_label_accuracy_is_the_classifiers_verdict_on_dec_mu(smoke_run, tmp_path, monkeypatch):
  """Recomputed from the checkpoint: Dec(mu(x)) for every test image, the cached classifier's argmax."""
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import data, domain_classifier  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import vaegan  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path / "cache"))
  work = tmp_path / "run"
  shutil.copytree(smoke_run, work)
  results, _ = evaluators.evaluate(str(work))
  run, state, _ = evaluators.restore_run(str(work))
  test = data.split_arrays(run.config, run.config.data.eval_split)
  classifier = evaluators.classifier_for(run.config, data.split_arrays(run.config, run.config.data.train_split), test)
  recon = jax.jit(lambda im: vaegan.reconstruct(run.models, state, im))(test["image"])
  probs, _ = domain_classifier.predict(classifier, np.asarray(recon))
  assert results["reconstructions/label_accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == test["label"])))
  real, _ = domain_classifier.predict(classifier, test["image"])
  assert results["test/label_accuracy"] == pytest.approx(float(np.mean(real.argmax(1) == test["label"])))


def test_compare_has_a_row_per_arithmetic_attribute_of_any_run():
  """CelebA runs carry arithmetic/<attribute>/raised_fraction; the table gets one row per attribute
  that any run has (here the VAE), sorted by name; other keys and runs without arithmetic add none."""
  import importlib  # pylint: disable=import-outside-toplevel
  compare_lib = importlib.import_module("vaegan_jax.evaluators.compare")  # the package exports the function
  columns = [("vae", {"arithmetic/Smiling/raised_fraction": 0.9, "arithmetic/Bangs/raised_fraction": 1.0,
                      "arithmetic/Bangs/prob_at_1": 0.4}, ""), ("gan", {"samples/frechet_distance": 3.0}, "")]
  rows = compare_lib._arithmetic_rows(columns)  # pylint: disable=protected-access
  assert rows == [("arithmetic/Bangs/raised_fraction", "attribute arithmetic raises P(Bangs)"),
                  ("arithmetic/Smiling/raised_fraction", "attribute arithmetic raises P(Smiling)")]
