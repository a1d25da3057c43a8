"""Shared fixtures: a prepared tfds folder and config loading."""

import atexit
import importlib.util
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _session_folder(variable: str, prefix: str) -> None:
  """Sets $variable to a new temporary folder unless it is set, and removes that folder when
  the process that made it exits (pytest-xdist workers inherit the variable, not the duty)."""
  if variable not in os.environ:
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, os.environ[variable], ignore_errors=True)


# XLA's persistent compilation cache, shared by this session's tests and the train.py
# processes they start: the same smoke train step compiles once instead of once per run
# (a smoke train.py takes 37 s cold, 12 s warm on 2 CPU cores). Set before jax is imported.
_session_folder("JAX_COMPILATION_CACHE_DIR", "vaegan_jax_xla_cache_")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# pytest runs two worker processes (pyproject: -n 2); on a GPU machine each would otherwise
# reserve 75% of its memory for JAX at start.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Domain classifiers that eval tests train are cached for the session (not in ~/.cache); tests
# that check the caching itself pass their own folder.
_session_folder("VAEGAN_CACHE_DIR", "vaegan_jax_cache_")


def shared_data_dir() -> pathlib.Path | None:
  """$VAEGAN_DATA_DIR, else ../shared/data beside the repo, if it exists."""
  for candidate in (os.environ.get("VAEGAN_DATA_DIR"), REPO.parent / "shared" / "data"):
    if candidate and pathlib.Path(candidate).is_dir():
      return pathlib.Path(candidate)
  return None


def load_config(name: str, arg: str = "smoke"):
  """configs/<name>.py's get_config(arg)."""
  spec = importlib.util.spec_from_file_location(f"configs_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> str:
  """A tfds data_dir shared by the session ($VAEGAN_TEST_TFDS_DIR to reuse one across runs)."""
  return os.environ.get("VAEGAN_TEST_TFDS_DIR") or str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def rng() -> np.random.Generator:
  """A generator seeded afresh for each test: a test's random data does not depend on which
  tests ran before it in the same pytest-xdist worker (a module-level generator did, and so
  a margin that held locally could fail under CI's ordering)."""
  return np.random.default_rng(0)


@pytest.fixture
def smoke_config(tfds_dir):
  c = load_config("default")
  c.data.data_dir = tfds_dir
  return c


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tfds_dir):
  """A finished in-process ``configs/default.py:smoke`` run (checkpoints 3 and 6), shared by the
  session: tests may add eval/ folders to it, and copy it before changing anything else."""
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  c = load_config("default")
  c.data.data_dir = tfds_dir
  workdir = tmp_path_factory.mktemp("smoke_run") / "run"
  trainer.train_and_evaluate(c, str(workdir))
  return workdir


@pytest.fixture(scope="session")
def method_runs(tmp_path_factory, tfds_dir):
  """A function ``name -> workdir``: a finished in-process ``configs/<name>.py:smoke`` run,
  trained once per test process and shared (tests copy it before changing anything)."""
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  done = {}

  def run(name: str) -> pathlib.Path:
    if name not in done:
      c = load_config(name)
      c.data.data_dir = tfds_dir
      workdir = tmp_path_factory.mktemp(name) / "run"
      trainer.train_and_evaluate(c, str(workdir))
      done[name] = workdir
    return done[name]

  return run
