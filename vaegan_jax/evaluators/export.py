"""``eval.py --export``: numbered PNG files of samples, reconstructions and test images, for the
FID tools people already use (clean-fid, torch-fidelity) to score the same files."""

from __future__ import annotations

import os
import shutil
import tempfile

from PIL import Image
from tqdm import tqdm

KINDS = ("samples", "reconstructions", "test")


def parse(spec: str) -> dict[str, int]:
  """``"samples=10000,reconstructions=10000"`` -> ``{"samples": 10000, "reconstructions": 10000}``.

  Raises:
    ValueError: an unknown kind, a count that is not a positive integer, or a kind twice.
  """
  counts = {}
  for part in filter(None, (p.strip() for p in spec.split(","))):
    kind, _, count = part.partition("=")
    if kind not in KINDS or kind in counts or not count.isdigit() or int(count) < 1:
      raise ValueError(f"--export {spec!r}: give KIND=N pairs with KIND one of {KINDS} (each once) and N >= 1, "
                       "e.g. --export samples=10000,reconstructions=10000")
    counts[kind] = int(count)
  if not counts:
    raise ValueError(f"--export {spec!r} names nothing to export, e.g. --export samples=10000")
  return counts


def export(workdir: str, step: int | None, counts: dict[str, int], out: str) -> dict[str, int]:
  """Writes ``out/<kind>/000000.png, ...`` for each kind of ``counts``.

  * ``samples``: decodes of prior draws, 1000 per ``Model.sample`` call with seeds
    ``config.seed + 1``, ``+ 2``, ... (the first 1000 are the draws eval.py scores on 1000
    test images or more).
  * ``reconstructions``: Dec(encode(x)) of the first N test images, in test order.
  * ``test``: those test images themselves (the reference set for FID).

  Files are 8-bit PNGs of the dataset's shape (grey or RGB). Each kind's folder appears whole
  or not at all (written to a temporary folder, then renamed).

  Returns:
    {kind: files written}.

  Raises:
    ValueError: more reconstructions or test images than the test split has, a model without
      an encoder asked for reconstructions, or ``out/<kind>`` already exists (nothing is
      overwritten: pick another --out or remove it).
  """
  from vaegan_jax import api, data  # pylint: disable=import-outside-toplevel
  model = api.load(workdir, step)
  for kind in counts:
    if os.path.exists(os.path.join(out, kind)):
      raise ValueError(f"{os.path.join(out, kind)} exists; eval.py never overwrites files: give another --out "
                       "or remove that folder")
  test = None
  if {"reconstructions", "test"} & set(counts):
    test = data.split_arrays(model.config, model.config.data.eval_split)["image"]
    largest = max(counts.get("reconstructions", 0), counts.get("test", 0))
    if largest > len(test):
      raise ValueError(f"the test split {model.config.data.eval_split!r} of {model.config.data.name} has "
                       f"{len(test)} images, fewer than the {largest} asked for: ask for at most {len(test)}")
  os.makedirs(out, exist_ok=True)
  written = {}
  for kind, count in counts.items():
    tmp = tempfile.mkdtemp(prefix=f".{kind}.", dir=out)
    try:
      chunk = 1000
      with tqdm(total=count, desc=f"export {kind}", unit="image", dynamic_ncols=True) as bar:
        for start in range(0, count, chunk):
          n = min(chunk, count - start)
          if kind == "samples":
            images = model.sample(n, seed=model.config.seed + 1 + start // chunk)
          elif kind == "reconstructions":
            images = model.reconstruct(test[start:start + n])
          else:
            images = test[start:start + n]
          for i, image in enumerate(images):
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
                os.path.join(tmp, f"{start + i:06d}.png"))
          bar.update(n)
      os.replace(tmp, os.path.join(out, kind))
      written[kind] = count
    finally:
      if os.path.isdir(tmp):
        shutil.rmtree(tmp)
  return written

