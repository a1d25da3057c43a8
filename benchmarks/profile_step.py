"""Where the VAE/GAN train step spends its time: a per-operation table from one profiled step.

  python benchmarks/profile_step.py                         # configs/vaegan_celeba.py, batch 64
  python benchmarks/profile_step.py --batch 32 --top 30 --config default
  XLA_FLAGS="--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true" \
      python benchmarks/profile_step.py --dtype bfloat16    # with an XLA:CPU setting

Compiles the step as train.py does (``parallel.jit_train_step``), runs two steps, traces a third
with ``jax.profiler`` (Perfetto trace) and prints, per XLA operation, the time from its start
to its end (for asynchronous operations the "end:" event), its shape, convolution window and
the JAX operation it came from; then the totals per kind of operation. On the CPU several
operations run at once on the two cores, so the times add up to more than the step. This
table guided the changes in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def op_durations(trace_dir: str) -> dict[str, float]:
  """{XLA operation name: microseconds from its start to its (asynchronous) end}."""
  path = glob.glob(os.path.join(trace_dir, "**", "*perfetto_trace.json.gz"), recursive=True)[0]
  with gzip.open(path) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  start, end = {}, {}
  for e in events:
    if e.get("ph") != "X" or e["name"].startswith(("ThunkExecutor", "$", "Threadpool")):
      continue
    if e["name"].startswith("end: "):
      end[e["name"][5:]] = e["ts"] + e["dur"]
    else:
      start[e["name"]] = (e["ts"], e["ts"] + e["dur"])
  return {name: end.get(name, stop) - begin for name, (begin, stop) in start.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="vaegan_celeba")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--dtype", default=None, help="compute dtype (default the config's model.dtype), e.g. bfloat16")
  args = parser.parse_args()
  import jax  # pylint: disable=import-outside-toplevel
  import run as benchmark  # pylint: disable=import-outside-toplevel
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel

  config = benchmark.load_config(args.config)
  step = benchmark.JaxStep(config, args.batch, args.dtype or config.model.dtype, parallel.make_mesh(jax.devices()[:1]))
  hlo = step.compiled.as_text()
  walls = []
  for _ in range(3):
    start = time.perf_counter()
    step()   # JaxStep.__call__ waits for the result
    walls.append(time.perf_counter() - start)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      step()
    durations = op_durations(trace_dir)

  kinds = collections.Counter()
  convolution_us = 0.0
  print(f"{'ms':>8}  {'operation':32s} {'shape':30s} {'window':46s} from")
  for i, (name, us) in enumerate(sorted(durations.items(), key=lambda kv: -kv[1])):
    kinds[re.sub(r"\.[0-9]+", "", name)] += us   # fusion.12 and custom-call.34.clone__onednn$convolution by kind
    m = re.search(r"^\s*(?:ROOT )?%" + re.escape(name) + r" = (\S+) \w+\(.*$", hlo, re.M)
    line = m.group(0) if m else ""
    if "convolution" in name or " convolution(" in line or "$convolution" in line:
      convolution_us += us
    if i >= args.top:
      continue
    window = re.search(r"window=\{[^}]*\}", line)
    origin = re.search(r'op_name="([^"]+)"', line)
    print(f"{us / 1e3:8.1f}  {name:32s} {(m.group(1) if m else '?')[:30]:30s} {window.group(0) if window else '':46s} "
          f"{origin.group(1)[-60:] if origin else ''}")
  total_us = sum(durations.values())
  print(f"\nstep wall {min(walls):.3f} s (fastest of 3 untraced); sum over operations {total_us / 1e6:.2f} s: "
        f"convolutions {convolution_us / 1e6:.2f} s ({convolution_us / total_us:.0%}), the rest "
        f"{(total_us - convolution_us) / 1e6:.2f} s; by kind:")
  for kind, us in kinds.most_common(12):
    print(f"{us / 1e3:10.1f} ms  {kind}")


if __name__ == "__main__":
  main()
