"""The evaluator of each method (``EVALUATORS``) and ``evaluate``, which runs one on a checkpoint
and writes ``<workdir>/eval/<step>/`` (metrics.json and the figures) only when it succeeds."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

from tqdm import tqdm

from vaegan_jax import data
from vaegan_jax.evaluators import aae, ccvae, mlvae, tvae, vaegan
from vaegan_jax.evaluators.context import EvalContext, classifier_for
from vaegan_jax.restore import restore_run

# Method name -> evaluator (``vaegan_jax.methods`` has the same names).
EVALUATORS: dict[str, Callable[[EvalContext], dict]] = {
    "vaegan": vaegan.evaluate,
    "vae": vaegan.evaluate,
    "gan": vaegan.evaluate,
    "tvae": tvae.evaluate,
    "aae": aae.evaluate,
    "semi_aae": aae.evaluate,
    "mlvae": mlvae.evaluate,
    "ccvae": ccvae.evaluate,
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
