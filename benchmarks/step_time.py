"""Times one config's train step with the code of any checkout: before/after figures of a change.

  git worktree add /tmp/before aa6e4cc
  python benchmarks/step_time.py --repo /tmp/before                       # that commit's code
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution \\
      python benchmarks/step_time.py --repo /tmp/before                   # with an XLA flag
  python benchmarks/step_time.py                                          # this checkout
  python benchmarks/step_time.py --set model.encoder_features=32,64,128   # a config value changed
  python benchmarks/step_time.py --config vae_celeba:cpu                  # a config's variant

Uses only what every version of the package has (methods.get, build_models, make_optimizers,
create_train_state, make_train_step), jits the step as plain ``jax.jit`` with donation (plus
``parallel.compiler_options`` where the checkout has it) and prints the median seconds per
step and images/s over ``--steps`` steps after two warm-up steps. Run the versions one after
another, alternating, and compare ratios: the machine's load changes from minute to minute.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import os
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repo", default=_HERE, help="checkout whose vaegan_jax and configs/ to use")
  parser.add_argument("--config", default="vaegan_celeba", help="a file of configs/ without .py, with :ARG for "
                      "its variant (vaegan_celeba:cpu)")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config value, as --config.KEY=VALUE of train.py (repeatable): e.g. "
                           "model.latent_dim=64, model.encoder_features=32,64,128")
  args = parser.parse_args()
  sys.path.insert(0, os.path.abspath(args.repo))
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from vaegan_jax import methods, parallel  # pylint: disable=import-outside-toplevel

  name, _, arg = args.config.partition(":")
  spec = importlib.util.spec_from_file_location("config", os.path.join(args.repo, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  for item in args.set:
    key, _, value = item.partition("=")
    *path, leaf = key.split(".")
    node = functools.reduce(getattr, path, config)
    old = getattr(node, leaf)
    parsed = ast.literal_eval(value if not isinstance(old, tuple) or value.startswith("(") else f"({value},)")
    setattr(node, leaf, parsed)
  mesh = parallel.make_mesh(jax.devices()[:1])
  if config.model.dtype == "auto":   # as trainer.setup resolves it
    config.model.dtype = parallel.compute_dtype("auto", mesh)
  shape = (64, 64, 3) if config.data.name == "celeba64" else (28, 28, 1)
  method = methods.get(config.method)
  models = method.build_models(config, shape)
  optimizers = method.make_optimizers(config, 100)
  state = jax.jit(functools.partial(method.create_train_state, config=config, models=models,
                                    optimizers=optimizers))(jax.random.key(0))
  batch = {"image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (args.batch, *shape), dtype=np.uint8))}
  try:
    options = parallel.compiler_options(mesh, config.model.dtype)
  except TypeError:  # a checkout from before the dtype argument (2026-12-07)
    options = parallel.compiler_options(mesh) if hasattr(parallel, "compiler_options") else {}
  step = jax.jit(method.make_train_step(config, models, optimizers), donate_argnums=0).lower(state, batch).compile(
      compiler_options=options or None)
  for _ in range(2):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  changed = " ".join(args.set)
  print(f"{args.repo} {args.config} {changed} batch {args.batch} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
        f"options={options}: {seconds:.3f} s/step, {args.batch / seconds:.2f} images/s")


if __name__ == "__main__":
  main()
