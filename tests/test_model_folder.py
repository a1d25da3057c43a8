"""A trained model travels: model folders (eval.py --save_model, Model.save), loading without
the dataset, and the one restoring layer below api and evaluators."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import vaegan_jax
from tests.conftest import REPO, load_config
from vaegan_jax import data as data_lib
from vaegan_jax import restore, workdir as workdir_lib
from vaegan_jax.data import pipeline

METHOD_CONFIGS = {"vaegan": "default", "tvae": "tvae_mnist", "aae": "aae_mnist", "semi_aae": "semi_aae_mnist",
                  "mlvae": "mlvae_mnist", "ccvae": "ccvae_mnist"}


def _no_data(monkeypatch):
  """Every way to the dataset raises, as on a machine without it (and without prepared tfds files)."""
  def absent(*args, **kwargs):
    raise FileNotFoundError("the dataset's files are not on this machine (test)")
  for module in (data_lib, pipeline):
    for name in ("dataset_info", "split_arrays", "prepare", "eval_images", "train_iterator"):
      monkeypatch.setattr(module, name, absent)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_dir):
  """name -> a finished smoke run of that method on the embedded digits (vae and gan: the default
  config with the method switched, as scripts/compare_baselines.sh does)."""
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  done = {}

  def run(method):
    if method not in done:
      c = load_config(METHOD_CONFIGS.get(method, "default"))
      if method in ("vae", "gan"):
        c.method = method
        c.loss.llike = "pixel" if method == "vae" else "dis_l"
      c.data.data_dir = tfds_dir
      workdir = tmp_path_factory.mktemp(method) / "run"
      trainer.train_and_evaluate(c, str(workdir))
      done[method] = str(workdir)
    return done[method]
  return run


def _digest(array) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _outputs(model, images) -> dict[str, str]:
  out = {"sample": _digest(model.sample(6, seed=1)), "prior": _digest(model.prior_codes(4, seed=2))}
  if model.method != "gan":
    z = model.encode(images)
    out.update(encode=_digest(z), decode=_digest(model.decode(z)), reconstruct=_digest(model.reconstruct(images)))
  if model.method in ("semi_aae", "ccvae"):
    out["classify"] = _digest(model.classify(images))
  if model.method == "mlvae":
    out["swap"] = _digest(model.swap(images[:2], images[2:4]))
  return out


@pytest.mark.parametrize("method", ["vaegan", "vae", "gan", "tvae", "aae", "semi_aae", "mlvae", "ccvae"])
def test_a_saved_model_loads_without_the_data_and_gives_the_workdirs_outputs(method, runs, tmp_path, monkeypatch, rng):
  workdir = runs(method)
  model = vaegan_jax.load(workdir)
  images = rng.integers(0, 256, (4, *model.image_shape), dtype=np.uint8)
  want = _outputs(model, images)
  folder = str(tmp_path / "saved")
  assert model.save(folder) == folder
  moved = str(tmp_path / "elsewhere" / "model")
  shutil.move(folder, moved)   # a folder handed on: nothing refers back to the workdir
  _no_data(monkeypatch)
  monkeypatch.delenv(pipeline.DATA_ENV, raising=False)
  loaded = vaegan_jax.load(moved)
  assert (loaded.method, loaded.step, loaded.image_shape, loaded.latent_dim) == \
      (model.method, model.step, model.image_shape, model.latent_dim)
  assert not loaded.data_available and "no test or training images" in loaded.unavailable
  assert _outputs(loaded, images) == want
  manifest = json.loads(open(os.path.join(moved, restore.MODEL_FILE), encoding="utf-8").read())
  assert manifest["version"] == restore.MODEL_VERSION and manifest["step"] == model.step
  assert all(name.startswith(restore.PARAMS_DIR + os.sep) for name in manifest["files"])   # no optimizer state
  assert not any("opt_state" in name for name in manifest["files"])


def test_a_workdir_whose_data_is_missing_still_loads_and_says_what_is_unavailable(runs, tmp_path, monkeypatch, rng):
  workdir = runs("vaegan")
  model = vaegan_jax.load(workdir)
  images = rng.integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  want = _outputs(model, images)
  _no_data(monkeypatch)
  offline = vaegan_jax.load(workdir)
  assert not offline.data_available and "the dataset 'mnist5k' is unavailable here" in offline.unavailable
  assert offline.class_names == tuple(str(d) for d in range(10))
  assert _outputs(offline, images) == want
  copy = tmp_path / "old_run"
  shutil.copytree(workdir, copy)
  os.remove(copy / "dataset.json")   # a run trained before train.py wrote it
  with pytest.raises(FileNotFoundError, match=r"dataset\.json does not exist .* --save_model DIR"):
    vaegan_jax.load(str(copy))


def test_the_explorer_serves_a_model_folder_from_prior_samples_and_uploads(runs, tmp_path, monkeypatch, rng):
  import io  # pylint: disable=import-outside-toplevel
  import threading  # pylint: disable=import-outside-toplevel
  import urllib.request  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from vaegan_jax.explorer import server  # pylint: disable=import-outside-toplevel
  folder = str(tmp_path / "model")
  vaegan_jax.load(runs("vaegan")).save(folder)
  _no_data(monkeypatch)
  model = vaegan_jax.load(folder)
  explorer = server.Explorer.from_model(model)
  http = server.make_server(explorer, "127.0.0.1", 0)
  thread = threading.Thread(target=http.serve_forever, daemon=True)
  thread.start()
  try:
    base = f"http://127.0.0.1:{http.server_address[1]}"
    info = json.loads(urllib.request.urlopen(f"{base}/api/info", timeout=30).read())
    assert info["num_test"] == 0 and info["has_encoder"] and "no test images" in info["notice"]
    assert any(d["group"] == "principal component (of prior draws)" for d in info["directions"])
    sample = json.loads(urllib.request.urlopen(f"{base}/api/sample?seed=3", timeout=30).read())
    assert len(sample["code"]) == model.latent_dim and sample["reconstruction"].startswith("data:image/png")
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(png, format="PNG")
    request = urllib.request.Request(f"{base}/api/upload", data=png.getvalue(), method="POST",
                                     headers={"Content-Type": "image/png"})
    uploaded = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert np.allclose(uploaded["code"], model.encode(model.prepare(Image.open(io.BytesIO(png.getvalue())))), atol=1e-5)
  finally:
    http.shutdown()
    http.server_close()


def _saved(runs, tmp_path) -> str:
  folder = str(tmp_path / "model")
  vaegan_jax.load(runs("vaegan")).save(folder)
  return folder


def test_a_missing_or_truncated_parameter_file_is_named_with_the_fix(runs, tmp_path):
  folder = _saved(runs, tmp_path)
  files = json.loads(open(os.path.join(folder, restore.MODEL_FILE), encoding="utf-8").read())["files"]
  biggest = max(files, key=lambda name: files[name]["bytes"])
  path = os.path.join(folder, biggest)
  content = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])
  with pytest.raises(restore.ModelFolderError, match=rf"{path} has \d+ bytes, not the {len(content)} saved "
                                                      r"\(truncated or changed\): copy the whole model folder again"):
    vaegan_jax.load(folder)
  os.remove(path)
  with pytest.raises(restore.ModelFolderError, match=rf"{path} is missing: .*--save_model DIR"):
    vaegan_jax.load(folder)


def test_a_model_of_another_format_version_or_config_version_is_refused(runs, tmp_path):
  folder = _saved(runs, tmp_path)
  path = os.path.join(folder, restore.MODEL_FILE)
  manifest = json.loads(open(path, encoding="utf-8").read())
  json.dump({**manifest, "version": 2, "vaegan_jax": "9.0"}, open(path, "w", encoding="utf-8"))
  with pytest.raises(restore.ModelFolderError, match=rf"{path} is model format version 2 \(saved by vaegan_jax 9\.0\); "
                                                      r"this vaegan_jax reads version 1"):
    vaegan_jax.load(folder)
  manifest["config"]["model"]["attention_heads"] = 4
  json.dump(manifest, open(path, "w", encoding="utf-8"))
  with pytest.raises(restore.ModelFolderError, match=r"holds a config this version cannot read \(saved config key "
                                                      r"model\.attention_heads is unknown"):
    vaegan_jax.load(folder)
  with open(path, "w", encoding="utf-8") as f:
    f.write('{"format": "vaegan_jax.mod')
  with pytest.raises(restore.ModelFolderError, match=r"model\.json cannot be read as JSON"):
    vaegan_jax.load(folder)


def test_saving_never_writes_into_a_workdir_or_over_a_folder(runs, tmp_path):
  model = vaegan_jax.load(runs("vaegan"))
  live = tmp_path / "live_run"
  lock = workdir_lib.WorkdirLock(str(live))
  lock.acquire()   # as a running train.py holds it
  try:
    with pytest.raises(ValueError, match=r"it is the workdir of a running train\.py .*nothing written"):
      model.save(str(live))
  finally:
    lock.release()
  assert sorted(os.listdir(live)) == [workdir_lib.LOCK_FILE]
  with pytest.raises(ValueError, match=r"it is a train\.py workdir; nothing written"):
    model.save(runs("vaegan"))
  (tmp_path / "taken").mkdir()
  (tmp_path / "taken" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="it exists, and nothing is overwritten"):
    model.save(str(tmp_path / "taken"))
  assert os.listdir(tmp_path / "taken") == ["notes.txt"]
  assert not [p for p in os.listdir(tmp_path) if ".partial." in p]


def test_eval_py_save_model_writes_a_folder_and_refuses_a_bad_target(runs, tmp_path):
  out = tmp_path / "model"
  command = [sys.executable, str(REPO / "eval.py"), "--workdir", runs("vaegan"), "--save_model", str(out)]
  done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert f"wrote {out}: Model(method='vaegan'" in done.stdout and restore.is_model_folder(str(out))
  again = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
  assert again.returncode == 1
  assert again.stderr.strip().splitlines()[-1].startswith(f"eval.py: cannot save a model folder to {out}: it exists")


def test_restoring_is_one_layer_below_api_and_evaluators():
  """No import runs back up: restore imports neither api nor evaluators, api no evaluators."""
  code = ("import sys, vaegan_jax.restore; bad = [m for m in sys.modules if m.startswith(('vaegan_jax.api', "
          "'vaegan_jax.evaluators', 'vaegan_jax.explorer'))]; assert not bad, bad; import vaegan_jax.api; "
          "bad = [m for m in sys.modules if m.startswith('vaegan_jax.evaluators')]; assert not bad, bad")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
