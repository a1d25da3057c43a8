"""``compare``: several runs evaluated side by side, as a Markdown table and one figure."""

from __future__ import annotations

import json
import os

from vaegan_jax.checkpoint import Checkpointer
from vaegan_jax.evaluators import registry


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
    ("reconstructions/attribute_accuracy", "attribute classifier agrees with the labels on reconstructions"),
    ("test/attribute_accuracy", "attribute classifier agrees with the labels on test images"),
)


def _arithmetic_rows(columns) -> list[tuple[str, str]]:
  """One row per attribute of the attribute arithmetic (``arithmetic/<name>/raised_fraction``) any run has."""
  names = sorted({k.split("/")[1] for _, r, _ in columns for k in r
                  if k.startswith("arithmetic/") and k.endswith("/raised_fraction")})
  return [(f"arithmetic/{n}/raised_fraction", f"attribute arithmetic raises P({n})") for n in names]


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
      results, folder = registry.evaluate(workdir)
    columns.append((workdir, results, folder))
  header = "| metric | " + " | ".join(f"{r['method']} ({os.path.basename(os.path.normpath(w))}, step {r['step']})"
                                        for w, r, _ in columns) + " |"
  lines = [header, "|---" * (len(columns) + 1) + "|"]
  for key, label in COMPARISON_ROWS + tuple(_arithmetic_rows(columns)):
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
