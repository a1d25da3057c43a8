"""Restoring a trained model: its saved config -> its networks -> its parameters.

The one layer below ``api`` (``vaegan_jax.load``) and ``evaluators`` (``eval.py``): both
restore through this module and neither imports the other. Two sources:

* a ``train.py`` workdir. ``restore_run`` rebuilds the whole run from the config saved with
  the checkpoint, dataset included, as eval.py needs. ``restore`` falls back to the networks
  alone when only the dataset is missing, from the workdir's ``dataset.json`` (written by
  train.py since 2026-12-06), and says what is unavailable.
* a model folder (``save_model``; ``eval.py --workdir W --save_model DIR``, ``Model.save``):
  the networks' parameters and BatchNorm statistics at one step (orbax, no optimizer state),
  the config, what the dataset contributed (image shape, attribute and class names, CelebA
  attribute vectors), and the size and SHA-256 of every parameter file. It needs no dataset.

Nothing here writes to a workdir; ``save_model`` writes only its new folder, whole or not
at all (a temporary sibling folder renamed at the end).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from vaegan_jax import config as config_lib
from vaegan_jax import data, parallel, trainer
from vaegan_jax import workdir as workdir_lib
from vaegan_jax.checkpoint import Checkpointer, abstract_with_sharding
from vaegan_jax.methods.common import TrainState

MODEL_FILE = "model.json"
MODEL_FORMAT = "vaegan_jax.model"
MODEL_VERSION = 1                  # the folder layout below; a reader refuses any other
PARAMS_DIR = "params"              # orbax: {"params": ..., "batch_stats": ...}
VECTORS_FILE = "attribute_vectors.npz"


class ModelFolderError(ValueError):
  """A model folder that cannot be used: the message names the file and the fix."""


@dataclasses.dataclass
class Restored:
  """A trained model's networks and what is known about its data.

  Attributes:
    config: the run's config (``config_lib.from_json`` of the saved one).
    info: the dataset's ``DatasetInfo`` (image shape, attribute and class names).
    models: {network name: Flax module} (``method.build_models``).
    state: a ``TrainState`` whose ``params`` and ``batch_stats`` are the checkpoint's (a model
      folder has no optimizer state: ``opt_state`` is empty).
    step: the checkpoint's step.
    source: the workdir or model folder it came from.
    data_available: the dataset can be read here (test images, training images).
    unavailable: "" or a sentence saying what is missing and why (no dataset here).
    attribute_vectors: {attribute: f32[latent_dim]} saved in a model folder, else None.
  """

  config: object
  info: data.DatasetInfo
  models: dict
  state: TrainState
  step: int
  source: str
  data_available: bool = True
  unavailable: str = ""
  attribute_vectors: dict[str, np.ndarray] | None = None


def is_model_folder(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MODEL_FILE))


def _open_checkpoint(workdir: str, step: int | None):
  """(checkpointer, step, config, hint) of a workdir's checkpoint (read-only)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir} has no checkpoints/ folder and no {MODEL_FILE}: is it a train.py --workdir "
                            "or a saved model folder?")
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
  except BaseException:
    checkpointer.close()
    raise
  return checkpointer, step, config, hint


def _setup(config, workdir: str, info: data.DatasetInfo | None = None) -> trainer.Run:
  try:
    return trainer.setup(config, jax.local_devices(), info=info)  # FileNotFoundError (missing data) passes as it is
  except ValueError as e:
    raise ValueError(f"the run in {workdir} (method {config.method!r}, data {config.data.name!r}) "
                     f"cannot be rebuilt by this version: {e}") from e


def _restore_state(checkpointer: Checkpointer, step: int, run: trainer.Run, hint: str) -> TrainState:
  try:
    state, _, _ = checkpointer.restore(step, run.abstract_state())
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"checkpoint {step} in {checkpointer.directory} cannot be restored ({type(e).__name__}: "
                     f"{str(e)[:300]}). It may be truncated, corrupt or of another architecture; {hint}") from e
  return state


def restore_run(workdir: str, step: int | None = None):
  """Rebuilds a run from its own saved config, dataset included, and restores a checkpoint
  (nothing is written): what ``eval.py`` needs.

  Args:
    workdir: a folder written by ``train.py``.
    step: the checkpoint step; None for the newest.

  Returns:
    (run, state, step): ``run`` is a ``trainer.Run`` built from the saved config.

  Raises:
    FileNotFoundError: no checkpoints in ``workdir``, none at ``step``, or the dataset's
      files are missing.
    ValueError: the checkpoint's config is not one this version can build, or its arrays
      cannot be read (truncated, corrupt, or of another architecture); the message lists
      the other saved steps to try with ``--step``.
  """
  checkpointer, step, config, hint = _open_checkpoint(workdir, step)
  try:
    run = _setup(config, workdir)
    state = _restore_state(checkpointer, step, run, hint)
  finally:
    checkpointer.close()
  return run, state, step


def _saved_info(workdir: str, config, missing: Exception) -> data.DatasetInfo:
  path = os.path.join(workdir, trainer.DATASET_FILE)
  why = " ".join(str(missing).split())[:300]
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"the dataset {config.data.name!r} of {workdir} is unavailable here ({why}), and {path} does not exist "
        "(train.py writes it since 2026-12-06): make the data reachable (VAEGAN_DATA_DIR or --config.data.*), "
        f"or where it is, save a model folder with: python eval.py --workdir {workdir} --save_model DIR") from missing
  try:
    with open(path, encoding="utf-8") as f:
      return data.info_from_json(json.load(f))
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} cannot be read ({e}); it is written by train.py: run train.py in {workdir} again "
                     "(it resumes and rewrites it) where the data is") from e


def restore(path: str, step: int | None = None) -> Restored:
  """A trained model from a model folder or a ``train.py`` workdir, with or without its dataset.

  Args:
    path: a model folder (it holds ``model.json``) or a workdir.
    step: a workdir's checkpoint (None: the newest); for a model folder, None or its own step.

  Returns:
    ``Restored``; from a workdir whose dataset is missing here, ``data_available`` is False
    and ``unavailable`` says why (the networks restore from the workdir's ``dataset.json``).

  Raises:
    FileNotFoundError: no checkpoint (at ``step``); a workdir whose dataset is missing and
      that has no ``dataset.json``.
    ModelFolderError: a model folder that is incomplete, truncated, changed or of another
      format version (see ``load_model_folder``).
    ValueError: a checkpoint this version cannot rebuild (see ``restore_run``).
  """
  if is_model_folder(path):
    return load_model_folder(path, step)
  checkpointer, step, config, hint = _open_checkpoint(path, step)
  try:
    unavailable = ""
    try:
      run = _setup(config, path)
    except (FileNotFoundError, data.DataError) as e:
      run = _setup(config, path, _saved_info(path, config, e))
      unavailable = (f"the dataset {config.data.name!r} is unavailable here ({' '.join(str(e).split())[:200]}), so "
                     "there are no test or training images")
    state = _restore_state(checkpointer, step, run, hint)
  finally:
    checkpointer.close()
  return Restored(run.config, run.info, run.models, state, step, path, data_available=not unavailable,
                  unavailable=unavailable)


# -- model folders --------------------------------------------------------------------------

def _digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _manifest(folder: str) -> dict[str, dict]:
  """{path relative to ``folder``: {"bytes", "sha256"}} of every file under it."""
  files = {}
  for root, _, names in os.walk(folder):
    for name in sorted(names):
      full = os.path.join(root, name)
      files[os.path.relpath(full, folder)] = {"bytes": os.path.getsize(full), "sha256": _digest(full)}
  return files


def check_save_target(out: str) -> None:
  """Raises ValueError, before anything is written, if ``out`` cannot become a new model folder.

  Raises:
    ValueError: ``out`` is the workdir of a running train.py, a train.py workdir, or exists.
  """
  try:
    workdir_lib.check_free(out)
  except workdir_lib.WorkdirBusyError as e:
    raise ValueError(f"cannot save a model folder to {out}: it is the workdir of a running train.py ({e}); nothing "
                     "written: give a new folder") from None
  if os.path.isdir(os.path.join(out, "checkpoints")):
    raise ValueError(f"cannot save a model folder to {out}: it is a train.py workdir; nothing written: give a new "
                     "folder")
  if os.path.lexists(out):
    raise ValueError(f"cannot save a model folder to {out}: it exists, and nothing is overwritten: give a new folder "
                     "or remove it")


def save_model(restored: Restored, out: str, attribute_vectors: dict[str, np.ndarray] | None = None) -> dict:
  """Writes ``restored`` as a self-contained model folder ``out`` (created whole or not at all).

  Layout: ``model.json`` (format, version, step, method, config, dataset description, files),
  ``params/`` (orbax: parameters and BatchNorm statistics, float32) and, given
  ``attribute_vectors``, ``attribute_vectors.npz``.

  Args:
    restored: from ``restore``.
    out: the new folder (must not exist).
    attribute_vectors: {attribute: f32[latent_dim]} to carry (VAE/GAN and VAE on CelebA).

  Returns:
    The ``model.json`` contents written.

  Raises:
    ValueError: ``out`` cannot be written (``check_save_target``).
  """
  from vaegan_jax import __version__  # pylint: disable=import-outside-toplevel
  out = os.path.abspath(out)
  check_save_target(out)
  parent = os.path.dirname(out)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial.", dir=parent)
  try:
    tree = {"params": restored.state.params, "batch_stats": restored.state.batch_stats}
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(os.path.join(tmp, PARAMS_DIR), jax.device_get(tree))
      checkpointer.wait_until_finished()
    if attribute_vectors:
      np.savez(os.path.join(tmp, VECTORS_FILE), **{k: np.asarray(v, np.float32) for k, v in attribute_vectors.items()})
    manifest = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "vaegan_jax": __version__,
                "method": restored.config.method, "step": int(restored.step), "source": os.path.abspath(restored.source),
                "config": config_lib.to_json(restored.config), "dataset": data.info_to_json(restored.info),
                "attribute_vectors": VECTORS_FILE if attribute_vectors else None, "files": _manifest(tmp)}
    with open(os.path.join(tmp, MODEL_FILE), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's folder is private (0700); the model folder is not
    os.rename(tmp, out)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)
  return manifest


def _folder_error(folder: str, name: str, problem: str) -> ModelFolderError:
  return ModelFolderError(f"{os.path.join(folder, name)} {problem}: copy the whole model folder again, or save it "
                          "anew with: python eval.py --workdir W --save_model DIR")


def _read_manifest(folder: str) -> dict:
  path = os.path.join(folder, MODEL_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise _folder_error(folder, MODEL_FILE, f"cannot be read as JSON ({e})") from e
  if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
    raise _folder_error(folder, MODEL_FILE, f"is not a vaegan_jax model description (no format {MODEL_FORMAT!r})")
  if manifest.get("version") != MODEL_VERSION:
    raise ModelFolderError(
        f"{path} is model format version {manifest.get('version')!r} (saved by vaegan_jax "
        f"{manifest.get('vaegan_jax', '?')}); this vaegan_jax reads version {MODEL_VERSION}: load it with the "
        "version that saved it, or save it again from its workdir with this one")
  for key in ("config", "dataset", "files", "step"):
    if key not in manifest:
      raise _folder_error(folder, MODEL_FILE, f"lacks its {key!r} entry")
  return manifest


def _check_files(folder: str, files: dict) -> None:
  for name, expected in sorted(files.items()):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
      raise _folder_error(folder, name, "is missing")
    size = os.path.getsize(path)
    if size != expected["bytes"]:
      raise _folder_error(folder, name, f"has {size} bytes, not the {expected['bytes']} saved (truncated or changed)")
    if _digest(path) != expected["sha256"]:
      raise _folder_error(folder, name, "differs from what was saved (its SHA-256 changed)")


def load_model_folder(folder: str, step: int | None = None) -> Restored:
  """A model folder written by ``save_model``; reads no dataset.

  Raises:
    ModelFolderError: ``model.json`` unreadable or of another format version, a config this
      version does not know, a parameter file missing, truncated or changed, or ``step``
      other than the folder's.
  """
  manifest = _read_manifest(folder)
  if step is not None and step != manifest["step"]:
    raise ModelFolderError(f"{os.path.join(folder, MODEL_FILE)} holds step {manifest['step']}, not {step}: drop the "
                           "step, or save that step with eval.py --workdir W --step N --save_model DIR")
  try:
    config = config_lib.from_json(manifest["config"])
    info = data.info_from_json(manifest["dataset"])
  except ValueError as e:
    raise ModelFolderError(
        f"{os.path.join(folder, MODEL_FILE)} holds a config this version cannot read ({e}; saved by vaegan_jax "
        f"{manifest.get('vaegan_jax', '?')}): load it with that version, or save it again with this one") from e
  _check_files(folder, manifest["files"])
  run = _setup(config, folder, info)
  abstract = run.abstract_state()
  target = abstract_with_sharding({"params": abstract.params, "batch_stats": abstract.batch_stats},
                                  parallel.replicated(run.mesh))
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      tree = checkpointer.restore(os.path.join(os.path.abspath(folder), PARAMS_DIR), target)
  except Exception as e:  # pylint: disable=broad-except  # orbax/tensorstore raise many types
    raise _folder_error(folder, PARAMS_DIR, f"cannot be restored as this config's networks ({type(e).__name__}: "
                                            f"{' '.join(str(e).split())[:200]})") from e
  state = TrainState(step=jnp.asarray(manifest["step"], jnp.int32), rng=jnp.zeros((2,), jnp.uint32),
                     params=tree["params"], batch_stats=tree["batch_stats"], opt_state={},
                     nonfinite_steps=jnp.zeros((), jnp.int32), nonfinite_streak=jnp.zeros((), jnp.int32))
  vectors = None
  if manifest.get("attribute_vectors"):
    with np.load(os.path.join(folder, manifest["attribute_vectors"])) as npz:
      vectors = {k: np.asarray(npz[k], np.float32) for k in npz.files}
  return Restored(config, info, run.models, state, int(manifest["step"]), folder, data_available=False,
                  unavailable="a model folder carries no images (no test or training images)",
                  attribute_vectors=vectors)
