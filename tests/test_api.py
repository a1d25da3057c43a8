"""The Python API: vaegan_jax.load(workdir) and what a loaded model does."""

import numpy as np
import pytest

import vaegan_jax
from vaegan_jax import images as image_lib
from vaegan_jax.restore import restore_run
from vaegan_jax.methods import vaegan


@pytest.fixture(scope="module")
def model(smoke_run):
  return vaegan_jax.load(str(smoke_run))


def test_load_gives_the_newest_checkpoint_and_its_shapes(model, smoke_run):
  assert (model.method, model.step, model.image_shape) == ("vaegan", 6, (28, 28, 1))
  assert model.latent_dim == model.config.model.latent_dim == 8   # the smoke config's
  assert vaegan_jax.load(str(smoke_run), step=3).step == 3


def test_encode_decode_match_the_method_functions_on_the_restored_state(model, smoke_run):
  run, state, _ = restore_run(str(smoke_run))
  x = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
  mu = np.asarray(vaegan.encode(run.models, state, x)[0])
  z = model.encode(x)
  assert z.shape == (5, 8) and z.dtype == np.float32
  np.testing.assert_allclose(z, mu, rtol=1e-5, atol=1e-5)
  expected = image_lib.to_uint8(np.asarray(vaegan.sample(run.models, state, mu)))
  out = model.decode(z)
  assert out.dtype == np.uint8 and out.shape == x.shape
  assert np.abs(out.astype(int) - expected).max() <= 1          # rounding of equal floats
  np.testing.assert_array_equal(model.reconstruct(x), model.decode(model.encode(x)))
  # One image is a batch of one (XLA may sum in another order for another batch size).
  np.testing.assert_allclose(model.encode(x[0]), z[:1], rtol=1e-5, atol=1e-6)


def test_sample_is_seeded_and_interpolate_runs_between_the_two_codes(model):
  a, b = model.sample(3, seed=1), model.sample(3, seed=1)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, model.sample(3, seed=2))
  path = model.interpolate(a[0], a[1], 5)
  assert path.shape == (5, 28, 28, 1)
  np.testing.assert_array_equal(path[0], model.reconstruct(a[0])[0])
  np.testing.assert_array_equal(path[-1], model.reconstruct(a[1])[0])


def test_bad_input_names_the_shape_and_the_fix(model):
  with pytest.raises(ValueError, match=r"u8 \[n, 28, 28, 1\].*model.prepare"):
    model.encode(np.zeros((2, 32, 32, 3), np.uint8))
  with pytest.raises(ValueError, match=r"codes must be f32 \[n, 8\]"):
    model.decode(np.zeros((2, 7)))
  with pytest.raises(ValueError, match="for semi_aae and ccvae"):
    model.classify(np.zeros((1, 28, 28, 1), np.uint8))
  with pytest.raises(ValueError, match="no attributes"):
    model.attribute_vectors()
  # prepare: any image to the dataset's form (here RGB 56x70 -> grey 28x28).
  prepared = model.prepare(np.full((56, 70, 3), 200, np.uint8))
  assert prepared.shape == (28, 28, 1) and np.all(prepared == 200)
  assert model.encode(prepared).shape == (1, 8)


def test_load_errors_are_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoints/ folder"):
    vaegan_jax.load(str(tmp_path))


def test_the_readme_example_runs_as_written(smoke_run, monkeypatch, capsys):
  """The README's Python block, with its workdir pointed at the smoke run."""
  import re  # pylint: disable=import-outside-toplevel
  from tests.conftest import REPO  # pylint: disable=import-outside-toplevel
  readme = (REPO / "README.md").read_text()
  block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
  assert "vaegan_jax.load(" in block
  monkeypatch.chdir(smoke_run.parent)
  code = block.replace('"runs/mine"', repr(str(smoke_run)))
  exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # pylint: disable=exec-used
  assert capsys.readouterr().out.strip().splitlines()[-1] == "(8, 28, 28, 1) (8, 8) (6, 28, 28, 1)"


def test_export_writes_numbered_pngs_equal_to_the_models_images_and_never_overwrites(model, smoke_run, tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from vaegan_jax import data, evaluators  # pylint: disable=import-outside-toplevel
  out = tmp_path / "png"
  counts = evaluators.parse_export("samples=12,reconstructions=5,test=5")
  assert evaluators.export(str(smoke_run), None, counts, str(out)) == counts
  read = lambda kind: np.stack([np.asarray(Image.open(p))[..., None]  # noqa: E731
                                for p in sorted((out / kind).glob("*.png"))])
  assert [p.name for p in sorted((out / "samples").glob("*.png"))][:2] == ["000000.png", "000001.png"]
  np.testing.assert_array_equal(read("samples"), model.sample(12, seed=model.config.seed + 1))
  test = data.split_arrays(model.config, model.config.data.eval_split)["image"][:5]
  np.testing.assert_array_equal(read("test"), test)
  np.testing.assert_array_equal(read("reconstructions"), model.reconstruct(test))
  with pytest.raises(ValueError, match="exists; eval.py never overwrites"):
    evaluators.export(str(smoke_run), None, {"samples": 1}, str(out))
  with pytest.raises(ValueError, match="has 500 images, fewer than the 501"):
    evaluators.export(str(smoke_run), None, {"test": 501}, str(tmp_path / "other"))
  assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
  for bad in ("samples", "pictures=3", "samples=0", "samples=2,samples=3", ""):
    with pytest.raises(ValueError, match="--export"):
      evaluators.parse_export(bad)


@pytest.mark.parametrize("name", ["semi_aae_mnist", "ccvae_mnist", "mlvae_mnist"])
def test_each_methods_extras_against_its_own_functions(name, method_runs):
  from vaegan_jax.methods import aae, ccvae, mlvae  # pylint: disable=import-outside-toplevel
  workdir = str(method_runs(name))
  model = vaegan_jax.load(workdir)
  run, state, _ = restore_run(workdir)
  c = run.config
  x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  z = model.encode(x)
  assert z.shape == (4, model.latent_dim) and model.sample(3).shape == (3, 28, 28, 1)
  if c.method == "semi_aae":
    probs = model.classify(x)
    logits = np.asarray(aae.encode(run.models, state, x)[1], np.float64)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
  elif c.method == "ccvae":
    np.testing.assert_allclose(model.classify(x), np.asarray(ccvae.classify(run.models, c, state, x)), atol=1e-6)
    label = c.ccvae.labels[1]
    edited = z.copy()
    edited[:, c.ccvae.block_dim:2 * c.ccvae.block_dim] = ccvae.prior_parameters(state)["loc_true"][1]
    np.testing.assert_array_equal(model.intervene(x, label, True), model.decode(edited))
    with pytest.raises(ValueError, match="not one of this model's labels"):
      model.intervene(x, "Smiling", True)
  else:
    style = c.mlvae.style_dim
    a, b = x[:2], x[2:]
    expected = model.decode(np.concatenate([model.encode(a)[:, :style], model.encode(b)[:, style:]], -1))
    np.testing.assert_array_equal(model.swap(a, b), expected)
    np.testing.assert_array_equal(model.swap(a, a), model.reconstruct(a))
    with pytest.raises(ValueError, match="equally many"):
      model.swap(a, x)
    # group_content: the product of the content posteriors, here by adding precisions.
    mu, logvar = (np.asarray(a, np.float64) for a in mlvae.encode(run.models, c, state, x)[1])
    precision = np.exp(-logvar)
    expected = (precision * mu).sum(0) / precision.sum(0)
    np.testing.assert_allclose(model.group_content(x), expected, rtol=1e-4, atol=1e-5)
