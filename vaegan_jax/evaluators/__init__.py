"""Checkpoint evaluation: ``evaluate(workdir, step)`` writes ``workdir/eval/<step>/metrics.json`` and PNG figures.

One module per method family, beside ``vaegan_jax.methods``: ``vaegan`` (vaegan, vae, gan),
``tvae``, ``aae`` (aae, semi_aae), ``mlvae``, ``ccvae``; each has ``evaluate(ctx)``, a
function of an ``EvalContext`` returning its metrics, registered by method name in
``registry.EVALUATORS``. The shared parts: ``context`` (``EvalContext``, the dataset's
domain classifier, batched device calls), ``quality`` (sample quality in the classifier's
embedding, the method's loss terms), ``figures`` (grids, interpolations, latent plots) and
``compare`` (several runs in one table); ``export`` writes numbered PNGs for external FID
tools. A run is restored by ``vaegan_jax.restore.restore_run`` (the layer below this package
and ``vaegan_jax.api``; re-exported here). Every metrics.json key is described in the
docstring of the evaluator that writes it.

Nothing is written unless the whole evaluation succeeds: results go to a temporary folder
that replaces ``eval/<step>`` at the end; checkpoints are only read.
"""

from vaegan_jax.evaluators.compare import COMPARISON_ROWS, compare
from vaegan_jax.evaluators.context import EvalContext, batched, classifier_for
from vaegan_jax.evaluators.export import export
from vaegan_jax.evaluators.export import parse as parse_export
from vaegan_jax.evaluators.registry import EVALUATORS, evaluate
from vaegan_jax.restore import restore_run

__all__ = ["COMPARISON_ROWS", "EVALUATORS", "EvalContext", "batched", "classifier_for", "compare", "evaluate",
           "export", "parse_export", "restore_run"]
