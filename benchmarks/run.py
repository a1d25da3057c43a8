"""Train-step throughput of every method, side by side with PyTorch; prints figures (not a test).

  python benchmarks/run.py                       # this machine's CPU, every method
  python benchmarks/run.py --device gpu          # the GPU rows of benchmarks/README.md
  python benchmarks/run.py --quick               # tiny configs, 3 timed steps: checks the script runs

For each method's train step (VAE/GAN 64x64 first) at several batch sizes and in float32 and
bfloat16: median seconds per step and images/s over ``--steps`` timed steps after warm-up,
each step timed until its outputs are ready on the device; the step's FLOPs from XLA's cost
analysis of the compiled program, the achieved FLOP/s, the model FLOP utilisation against the
vendor's peak (``PEAKS``) and against the dense matmul rate measured in the same run, and the
compiled program's device memory. For the VAE/GAN the same network and step in PyTorch
(benchmarks/torch_vaegan.py: eager NCHW, eager channels_last, torch.compile, and channels_last
with bf16 autocast, eager and compiled) run in the same rounds, one step of each variant per round,
so that the machine's load falls on all of them alike; the table gives ours / theirs. Before
timing, the PyTorch modules get the JAX parameters and both must compute the same losses and
gradients. Last, the input pipeline's own rate (batches/s of the grain pipeline) beside the
step's. ``--out FILE.json`` keeps every figure; the markdown table goes to stdout.

Images/s counts the examples of ``config.train.batch_size``: images for most methods,
triplets for TVAE (each three images), images in groups for ML-VAE.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)  # vaegan_jax and configs from this checkout, installed or not

import numpy as np  # noqa: E402

# Vendor peaks of dense arithmetic, FLOP/s. f32 rows of a GPU are held against the TF32 tensor
# core peak, which XLA and cuDNN use for f32 convolutions and matmuls by default on Hopper.
PEAKS = {
    "H100": {"float32": 494.7e12, "bfloat16": 989.4e12,
             "source": "NVIDIA H100 Tensor Core GPU datasheet, SXM: TF32 989 and BF16 1,979 TFLOPS "
                       "with sparsity, i.e. 494.7 and 989.4 dense; FP32 without tensor cores 67"},
    "H200": {"float32": 494.7e12, "bfloat16": 989.4e12,
             "source": "NVIDIA H200 Tensor Core GPU datasheet, SXM: TF32 989 and BF16 1,979 TFLOPS "
                       "with sparsity, i.e. 494.7 and 989.4 dense; FP32 without tensor cores 67"},
}

IMAGE_SHAPES = {"mnist5k": (28, 28, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
                "celeba64": (64, 64, 3)}


# ------------------------------------------------------------------------------------------
# What to run


def plan(device: str, quick: bool) -> list[dict[str, Any]]:
  """Rows to measure: {config, batch sizes, dtypes, torch} per method.

  The VAE/GAN 64x64 comes first and alone gets the PyTorch comparison. On GPU the other
  methods run at their config's batch and 8x it, on CPU (minutes a row) at their config's batch.
  """
  if quick:
    return [dict(name="vaegan", config="vaegan_celeba:smoke", batches=(8,), dtypes=("float32",), torch=True),
            *[dict(name=n, config=f"{c}:smoke", batches=(None,), dtypes=("float32",), torch=False)
              for n, c in (("vae", "vae_celeba"), ("gan", "gan_celeba"), ("tvae", "tvae_mnist"),
                           ("aae", "aae_mnist"), ("semi_aae", "semi_aae_mnist"), ("mlvae", "mlvae_mnist"),
                           ("ccvae", "ccvae_mnist"))]]
  if device == "gpu":
    main = dict(name="vaegan", config="vaegan_celeba", batches=(64, 256, 1024), dtypes=("float32", "bfloat16"),
                torch=True)
    scale = 8
  else:
    main = dict(name="vaegan", config="vaegan_celeba", batches=(32, 64), dtypes=("float32", "bfloat16"), torch=True)
    scale = 1
  others = [("vae", "vae_celeba"), ("gan", "gan_celeba"), ("vaegan 28x28 (train.py default)", "default"),
            ("tvae", "tvae_mnist"), ("aae", "aae_mnist"), ("semi_aae", "semi_aae_mnist"), ("mlvae", "mlvae_mnist"),
            ("mlvae conv", "mlvae_celeba"), ("ccvae", "ccvae_mnist"), ("ccvae conv", "ccvae_celeba")]
  batches = (None, f"x{scale}") if scale > 1 else (None,)
  return [main] + [dict(name=n, config=c, batches=batches, dtypes=("float32", "bfloat16"), torch=False)
                   for n, c in others]


def load_config(spec: str):
  """``configs/<name>.py[:arg]``'s config."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  name, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(f"configs_{name}", os.path.join(_REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg)


def example_batch(config, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A batch of random data in the layout ``config.method``'s train step reads (see each
  method's ``make_train_step``): uint8 images, labels where the method has them."""
  shape = IMAGE_SHAPES[config.data.name]
  images = lambda *lead: rng.integers(0, 256, (*lead, *shape), dtype=np.uint8)  # noqa: E731
  labels = lambda: rng.integers(0, 10, (batch_size,), dtype=np.int64)  # noqa: E731
  method = config.method
  if method == "tvae":
    return {"anchor": images(batch_size), "positive": images(batch_size), "negative": images(batch_size)}
  if method in ("aae", "semi_aae"):
    batch = {"image": images(batch_size), "label": labels()}
    if method == "semi_aae":
      batch.update(labelled_image=images(batch_size), labelled_label=labels())
    return batch
  if method == "mlvae":
    k = config.mlvae.group_size
    return {"image": images(batch_size // k, k)}
  if method == "ccvae":
    num_labels = len(config.ccvae.labels)
    return {"image": images(batch_size), "label": (rng.random((batch_size, num_labels)) < 0.5).astype(np.float32),
            "supervised": rng.random((batch_size,)) < config.ccvae.supervision_rate}
  return {"image": images(batch_size)}


# ------------------------------------------------------------------------------------------
# Timing


def cost_flops(compiled, lowered=None) -> float | None:
  """FLOPs of one call of a compiled XLA program (its cost analysis), or None.

  XLA's cost analysis counts a library custom call (the oneDNN convolutions of a bf16 CPU step,
  ``parallel.CPU_BF16_COMPILER_OPTIONS``) as zero FLOPs; for a compiled program that has any,
  the count of ``lowered`` (the same program before XLA's passes) is used instead."""
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel
  def flops_of(stage):
    analysis = stage.cost_analysis()
    if isinstance(analysis, (list, tuple)):
      analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None
  if lowered is not None and parallel.ONEDNN_CUSTOM_CALL_PREFIX in compiled.as_text():
    return flops_of(lowered)
  return flops_of(compiled)


def device_bytes(compiled) -> int | None:
  """Arguments + temporaries of a compiled program (outputs alias the donated state)."""
  try:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  # not every backend reports it
    return None


class JaxStep:
  """One method's jitted train step on fixed data: ``__call__`` runs a step and waits for it."""

  def __init__(self, config, batch_size: int, dtype: str, mesh):
    import jax  # pylint: disable=import-outside-toplevel
    from vaegan_jax import methods, parallel  # pylint: disable=import-outside-toplevel
    dtype = parallel.compute_dtype(dtype, mesh)   # "auto": the configs' default
    config.model.dtype = dtype
    config.train.batch_size = batch_size
    method = methods.get(config.method)
    models = method.build_models(config, IMAGE_SHAPES[config.data.name])
    optimizers = method.make_optimizers(config, 100)
    create = functools.partial(method.create_train_state, config=config, models=models, optimizers=optimizers)
    self.state = jax.jit(create, out_shardings=parallel.replicated(mesh))(jax.random.key(config.seed))
    self.batch = parallel.shard_batch(example_batch(config, batch_size, np.random.default_rng(0)), mesh)
    step = parallel.jit_train_step(method.make_train_step(config, models, optimizers), mesh, dtype)
    start = time.perf_counter()
    lowered = step.lower(self.state, self.batch)
    self.compiled = lowered.compile()
    self.compile_seconds = time.perf_counter() - start
    self.flops = cost_flops(self.compiled, lowered)
    self.bytes = device_bytes(self.compiled)
    self.parameters = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params))
    self._jax = jax

  def __call__(self) -> None:
    self.state, metrics = self.compiled(self.state, self.batch)
    self._jax.block_until_ready((self.state, metrics))


def timed_rounds(variants: dict[str, Callable[[], None]], warmup: int, steps: int) -> dict[str, list[float]]:
  """Seconds per step of each variant, one step of each per round (warm-up rounds dropped)."""
  times = {name: [] for name in variants}
  for r in range(warmup + steps):
    for name, step in variants.items():
      start = time.perf_counter()
      step()
      if r >= warmup:
        times[name].append(time.perf_counter() - start)
  return times


def matmul_flops_per_second(dtype: str, device: str) -> float:
  """Dense square matmul rate of JAX on this device (the best of 5 after warm-up)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  n = 8192 if device == "gpu" else 2048
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best


def cpu_description() -> tuple[str, float | None]:
  """(model name, f32 peak estimate in FLOP/s) of this machine's CPU from /proc/cpuinfo."""
  try:
    text = open("/proc/cpuinfo").read()
  except OSError:
    return platform.processor() or "unknown CPU", None
  field = lambda key: next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith(key)), "")  # noqa: E731,E741
  flags, mhz = field("flags").split(), field("cpu MHz")
  lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
  # Two FMA units per core (Intel server cores since Skylake-SP), 2 FLOPs per lane per FMA.
  peak = (os.cpu_count() or 1) * 2 * lanes * 2 * float(mhz) * 1e6 if mhz else None
  return field("model name"), peak


def vendor_peak(device_kind: str, dtype: str) -> tuple[float | None, str]:
  """(peak FLOP/s, where the figure comes from) for ``dtype`` work on this device."""
  for key, peak in PEAKS.items():
    if key in device_kind:
      return peak[dtype], peak["source"]
  if device_kind == "cpu":
    name, peak = cpu_description()
    return peak, (f"{name}: no vendor figure for this unnamed virtual CPU; estimate = cores x 2 FMA units x "
                  f"{'16' if peak else '?'} f32 lanes x 2 FLOP x the clock in /proc/cpuinfo (bf16 held to the same)")
  return None, f"no published peak for {device_kind!r}"


# ------------------------------------------------------------------------------------------
# PyTorch


def torch_variants(config, batch_size: int, device: str, quick: bool) -> tuple[dict[str, Callable], list[str]]:
  """The PyTorch rows of the VAE/GAN comparison: {name: one synchronised step}, plus notes."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch_vaegan as tv  # pylint: disable=import-outside-toplevel
  dev = torch.device("cuda" if device == "gpu" else "cpu")
  torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithms per shape, as users set it
  shape = IMAGE_SHAPES[config.data.name]
  sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
  # bf16 autocast on the CPU too: on a CPU with AMX-BF16 / AVX512-BF16 it is what a user after speed turns on.
  kinds = [("torch eager NCHW", False, False, None), ("torch eager channels_last", True, False, None),
           ("torch eager channels_last bf16 autocast", True, False, torch.bfloat16),
           ("torch.compile channels_last", True, True, None),
           ("torch.compile channels_last bf16 autocast", True, True, torch.bfloat16)]
  variants, notes = {}, []
  for name, channels_last, compiled, autocast in kinds:
    torch.manual_seed(0)
    model = tv.from_config(config, shape).to(dev)
    x = torch.rand(batch_size, shape[2], shape[0], shape[1], device=dev) * 2 - 1
    if channels_last:
      model = model.to(memory_format=torch.channels_last)
      x = x.contiguous(memory_format=torch.channels_last)
    step = tv.TrainStep(model, compile=compiled, autocast=autocast)

    def run(step=step, x=x):
      step(x)
      sync()

    start = time.perf_counter()
    try:
      run()
    except Exception as e:  # pylint: disable=broad-except  # e.g. no C++ compiler for Inductor
      notes.append(f"{name}: skipped ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
      continue
    notes.append(f"{name}: first step (incl. compilation) {time.perf_counter() - start:.1f} s")
    variants[name] = run
  return variants, notes


def equivalence(config, device: str, dtype: str) -> dict[str, Any]:
  """Parameter counts and the relative differences of losses and gradients, JAX vs PyTorch
  (``torch_vaegan.compare_with_jax``; float64 is the exact check, float32 shows its rounding)."""
  import torch_vaegan as tv  # pylint: disable=import-outside-toplevel
  return tv.compare_with_jax(config, IMAGE_SHAPES[config.data.name], batch_size=8,
                             device="cuda" if device == "gpu" else "cpu", dtype=dtype)


# ------------------------------------------------------------------------------------------
# Input pipeline


def pipeline_rate(config_spec: str, batch_size: int, batches: int, data_dir: str) -> dict[str, Any]:
  """Batches/s of ``data.train_iterator`` (tfds ArrayRecord + grain) for one config's data."""
  from vaegan_jax import data, methods  # pylint: disable=import-outside-toplevel
  config = load_config(config_spec)
  if data_dir:
    config.data.data_dir = data_dir
  config.train.batch_size = batch_size
  try:
    data.dataset_info(config)  # prepares the dataset once
  except (FileNotFoundError, data.DataError, ValueError) as e:
    return {"config": config_spec, "skipped": str(e).splitlines()[0][:200]}
  iterator = data.train_iterator(config, batch_size, seed=0, dataset=methods.get(config.method).train_dataset)
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  seconds = time.perf_counter() - start
  return {"config": config_spec, "dataset": config.data.name, "batch": batch_size,
          "batches_per_second": batches / seconds, "images_per_second": batches * batch_size / seconds}


# ------------------------------------------------------------------------------------------


def _fmt(x, spec: str, none: str = "-") -> str:
  return none if x is None else format(x, spec)


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
  parser.add_argument("--quick", action="store_true", help="tiny configs and 3 timed steps (a dry run)")
  parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 20; 3 with --quick)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
  parser.add_argument("--only", default="", help="comma-separated row names to run (e.g. vaegan,tvae)")
  parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows")
  parser.add_argument("--torch-threads", type=int, default=0, help="PyTorch intra-op threads (default: cores)")
  parser.add_argument("--data_dir", default="", help="tfds data_dir for the pipeline rows (default tfds's)")
  parser.add_argument("--out", default="", help="write every figure to this JSON file")
  parser.add_argument("--deadline", type=float, default=0.0,
                      help="seconds after which no further row starts (0: none); skipped rows are listed")
  args = parser.parse_args(argv)
  steps = args.steps or (3 if args.quick else 20)
  warmup = 1 if args.quick else args.warmup

  if args.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  else:  # JAX and PyTorch share the GPU: JAX takes what it needs, not 75% up front
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel
  devices = jax.devices()
  if args.device == "gpu" and devices[0].platform != "gpu":
    raise SystemExit(f"run.py: error: --device gpu but JAX sees {devices}; install jax with CUDA")
  mesh = parallel.make_mesh(devices[:1])
  kind = devices[0].device_kind
  torch_ok = not args.no_torch
  notes = []
  if torch_ok:
    try:
      import torch  # pylint: disable=import-outside-toplevel
      torch.set_num_threads(args.torch_threads or os.cpu_count())
    except ImportError:
      torch_ok = False
      notes.append("PyTorch rows skipped: torch is not installed (pip install -e '.[bench]')")
  env = {"date": datetime.date.today().isoformat(), "device": args.device, "device_kind": kind,
         "cpu": cpu_description()[0],
         "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
         "compiler_options": {d: parallel.compiler_options(mesh, d) for d in ("float32", "bfloat16")}, "steps": steps, "warmup": warmup,
         "torch": __import__("torch").__version__ if torch_ok else None,
         "torch_threads": __import__("torch").get_num_threads() if torch_ok else None}
  print("# environment", json.dumps(env), flush=True)

  matmul = {d: matmul_flops_per_second(d, args.device) for d in ("float32", "bfloat16")}
  peaks = {d: vendor_peak(kind, d) for d in ("float32", "bfloat16")}
  print(f"# dense matmul measured: f32 {matmul['float32'] / 1e12:.3f} TFLOP/s, bf16 {matmul['bfloat16'] / 1e12:.3f} "
        f"TFLOP/s; vendor peak: {peaks['float32'][1]}", flush=True)

  rows, checks, pipelines = [], [], []
  results = {"environment": env, "summary": {}, "matmul_flops_per_second": matmul,
             "vendor_peak": {d: {"flops_per_second": p[0], "source": p[1]} for d, p in peaks.items()},
             "equivalence": checks, "rows": rows, "pipelines": pipelines, "notes": notes}

  def save() -> None:  # after every row: a run cut short (a device call's time limit) keeps what it measured
    results["summary"] = summarise(rows)
    if args.out:
      with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
      os.replace(args.out + ".tmp", args.out)

  started = time.monotonic()
  late = lambda: args.deadline and time.monotonic() - started > args.deadline  # noqa: E731
  only = {s.strip() for s in args.only.split(",") if s.strip()}
  for entry in plan(args.device, args.quick):
    if only and entry["name"] not in only:
      continue
    base = load_config(entry["config"])
    if entry["torch"] and torch_ok and not late():
      for dtype in ("float32", "float64"):
        check = equivalence(base, args.device, dtype)
        checks.append(check)
        print("# JAX vs PyTorch, same parameters, batch and noise:", json.dumps(check), flush=True)
    for b in entry["batches"]:
      batch = base.train.batch_size if b is None else (base.train.batch_size * int(b[1:]) if isinstance(b, str) else b)
      for dtype in entry["dtypes"]:
        if late():
          notes.append(f"{entry['name']} batch {batch} {dtype}: not run (past --deadline {args.deadline:.0f} s)")
          print("#", notes[-1], flush=True)
          continue
        config = load_config(entry["config"])
        try:
          ours = JaxStep(config, batch, dtype, mesh)
        except Exception as e:  # pylint: disable=broad-except  # e.g. out of memory at a large batch
          notes.append(f"{entry['name']} batch {batch} {dtype}: not run ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
          print("#", notes[-1], flush=True)
          continue
        variants = {"jax": ours}
        if entry["torch"] and torch_ok and dtype == "float32":
          theirs, torch_notes = torch_variants(load_config(entry["config"]), batch, args.device, args.quick)
          notes.extend(f"batch {batch}: {n}" for n in torch_notes)
          variants.update(theirs)
        times = timed_rounds(variants, warmup, steps)
        for name, ts in times.items():
          seconds = statistics.median(ts)
          jax_row = name == "jax"
          impl = f"jax {dtype}" if jax_row else name
          flops = ours.flops
          row = {"model": entry["name"], "config": entry["config"], "impl": impl, "batch": batch, "dtype": dtype,
                 "seconds_per_step": seconds, "images_per_second": batch / seconds, "steps": len(ts),
                 "step_flops": flops, "flops_per_second": flops / seconds if flops else None,
                 "mfu_vendor": (flops / seconds / peaks[dtype][0]) if flops and peaks[dtype][0] else None,
                 "mfu_matmul": flops / seconds / matmul[dtype] if flops else None,
                 "device_bytes": ours.bytes if jax_row else None,
                 "compile_seconds": ours.compile_seconds if jax_row else None, "parameters": ours.parameters}
          if not jax_row:
            row["dtype"] = "bfloat16 autocast" if "bf16" in name else "float32"
            row["ours_over_theirs"] = statistics.median(ts) / statistics.median(times["jax"])
          rows.append(row)
          print(f"{row['model']:32s} {impl:44s} b={batch:<5d} {seconds:8.4f} s/step {row['images_per_second']:9.1f} img/s "
                f"{_fmt(row['flops_per_second'] and row['flops_per_second'] / 1e12, '.3f')} TFLOP/s "
                f"MFU {_fmt(row['mfu_vendor'] and 100 * row['mfu_vendor'], '.1f')}% / {_fmt(row['mfu_matmul'] and 100 * row['mfu_matmul'], '.1f')}% "
                + (f"ours/theirs {row['ours_over_theirs']:.2f}" if "ours_over_theirs" in row else ""), flush=True)
        save()
        del ours, variants

  if (not only or "pipeline" in only) and not late():
    for spec, batch in (("default", 32), ("vaegan_celeba", 64)):
      result = pipeline_rate(spec, batch, 5 if args.quick else 100, args.data_dir)
      pipelines.append(result)
      print("# input pipeline:", json.dumps(result), flush=True)
  save()
  print()
  print(markdown(results))
  return results


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
  """The VAE/GAN comparison at each framework's best. The headline, ``best_ours_over_best_torch``:
  our fastest row (any batch, f32 or bf16) over PyTorch's fastest (any variant, batch and
  precision, bf16 autocast included); beside it ``best_f32_ours_over_best_f32_torch``, and ours
  over the best of PyTorch eager and of torch.compile; per batch, ours (f32) over the faster of
  PyTorch eager NCHW and channels_last in f32."""
  main = [r for r in rows if r["model"] == "vaegan"]
  best = lambda pred: max((r for r in main if pred(r)), key=lambda r: r["images_per_second"], default=None)  # noqa: E731
  ours = best(lambda r: r["impl"].startswith("jax"))
  ours_f32 = best(lambda r: r["impl"] == "jax float32")
  pairs = (("torch", ours, best(lambda r: r["impl"].startswith("torch"))),
           ("f32_ours_over_best_f32_torch", ours_f32,
            best(lambda r: r["impl"].startswith("torch") and r["dtype"] == "float32")),
           ("eager", ours, best(lambda r: r["impl"].startswith("torch eager"))),
           ("compile", ours, best(lambda r: r["impl"].startswith("torch.compile"))))
  out = {}
  for name, mine, theirs in pairs:
    if mine and theirs:
      key = f"best_{name}" if name.startswith("f32") else f"best_ours_over_best_{name}"
      out[key] = {
          "ratio": mine["images_per_second"] / theirs["images_per_second"],
          "ours": f"{mine['impl']} batch {mine['batch']}: {mine['images_per_second']:.1f} images/s",
          "theirs": f"{theirs['impl']} batch {theirs['batch']}: {theirs['images_per_second']:.1f} images/s"}
  for batch in sorted({r["batch"] for r in main}):
    f32 = [r for r in main if r["batch"] == batch and r["impl"] == "jax float32"]
    fp32_eager = [r for r in main if r["batch"] == batch and r["impl"] in ("torch eager NCHW", "torch eager channels_last")]
    if f32 and fp32_eager:
      fastest = max(fp32_eager, key=lambda r: r["images_per_second"])
      out[f"batch_{batch}_f32_ours_over_eager"] = {"ratio": f32[0]["images_per_second"] / fastest["images_per_second"],
                                                   "theirs": fastest["impl"]}
  if ours and ours.get("step_flops"):
    out["best_mfu_vendor"] = ours["mfu_vendor"]
    out["best_mfu_matmul"] = ours["mfu_matmul"]
    # The paper's CelebA schedule (37,500 steps of batch 64) at the measured batch-64 rate.
    b64 = [r for r in main if r["batch"] == 64 and r["impl"].startswith("jax")]
    if b64:
      fastest = min(b64, key=lambda r: r["seconds_per_step"])
      out["paper_schedule_minutes"] = {"minutes": 37_500 * fastest["seconds_per_step"] / 60, "at": fastest["impl"]}
  return out


def markdown(results: dict[str, Any]) -> str:
  """The rows as a markdown table (what benchmarks/README.md shows)."""
  lines = ["| model | implementation | batch | s/step | images/s | TFLOP/s | MFU vendor | MFU matmul | memory | ours/theirs |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in results["rows"]:
    lines.append(
        f"| {r['model']} | {r['impl']} | {r['batch']} | {r['seconds_per_step']:.4f} | {r['images_per_second']:.1f} | "
        f"{_fmt(r['flops_per_second'] and r['flops_per_second'] / 1e12, '.3f')} | "
        f"{_fmt(r['mfu_vendor'] and 100 * r['mfu_vendor'], '.1f')}{'%' if r['mfu_vendor'] else ''} | "
        f"{_fmt(r['mfu_matmul'] and 100 * r['mfu_matmul'], '.1f')}{'%' if r['mfu_matmul'] else ''} | "
        f"{_fmt(r['device_bytes'] and r['device_bytes'] / 2 ** 20, '.0f')}{' MiB' if r['device_bytes'] else ''} | "
        f"{_fmt(r.get('ours_over_theirs'), '.2f')} |")
  for p in results["pipelines"]:
    if "skipped" in p:
      lines.append(f"\ninput pipeline {p['config']}: skipped ({p['skipped']})")
    else:
      lines.append(f"\ninput pipeline {p['config']} ({p['dataset']}, batch {p['batch']}): "
                   f"{p['batches_per_second']:.1f} batches/s = {p['images_per_second']:.0f} images/s")
  for key, value in results.get("summary", {}).items():
    lines.append(f"\n{key}: {json.dumps(value)}")
  for n in results["notes"]:
    lines.append(f"\nnote: {n}")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
