"""Data parallelism on 8 simulated CPU devices equals the 1-device step (VAE/GAN, and ML-VAE with
its groups kept whole on one device each), in one subprocess."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import REPO


class _GpuDevice:
  platform = "gpu"


class _GpuMesh:
  """A one-device mesh of another backend: what parallel's CPU-only choices see on a GPU."""
  devices = np.array([_GpuDevice()])


SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from tests.conftest import load_config
    from vaegan_jax import data, parallel, trainer
    from vaegan_jax.data import groups
    assert len(jax.devices()) == 8, jax.devices()

    def one_and_eight(c, batch_size, dataset=None, leaf_rtol=1e-4):
      # Adam's and RMSProp's eps=1e-8 divide near-zero gradient entries by their own size,
      # turning the all-reduce's float reordering (1e-7) into full-size updates; eps=1 keeps the
      # update near-linear in the gradient so that the test measures the parallelism itself.
      for name in ("encoder", "decoder", "discriminator"):
        c.optim[name].eps = 1.0
      batches = [next(it) for it in [data.train_iterator(c, batch_size, seed=0, dataset=dataset)] for _ in range(3)]
      finals, logged = [], []
      for devices in (jax.devices()[:1], jax.devices()):
        run = trainer.setup(c, devices)
        state = run.init_state()
        step = parallel.jit_train_step(run.method.make_train_step(c, run.models, run.optimizers), run.mesh)
        logged.append([])
        for b in batches:
          sharded = parallel.shard_batch(b, run.mesh)
          assert len(sharded["image"].sharding.device_set) == len(devices)
          state, m = step(state, sharded)
          logged[-1].append(jax.device_get(m))
        assert len(state.params["encoder"]["mu"]["kernel"].sharding.device_set) == len(devices)
        finals.append(jax.device_get(state))
      # Every logged loss of every step: BatchNorm statistics over a device's rows instead of the
      # global batch would change step 1's losses, an unreduced or 8x gradient the next steps'.
      for one, eight in zip(*logged):
        for k in one:
          np.testing.assert_allclose(eight[k], one[k], rtol=2e-4, atol=1e-6, err_msg=k)
      leaves = [(jax.tree_util.keystr(path), a, b) for (path, a), b in
                zip(jax.tree_util.tree_leaves_with_path(finals[0]), jax.tree.leaves(finals[1]), strict=True)]
      diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)))
      rel = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-4)) for _, a, b in leaves)
      print("MAXDIFF", c.method, diff, rel)
      # Parameters, batch stats and optimizer states, each leaf against its own scale (the
      # VAE/GAN's optimizer states, squares of gradients that are small sums of cancelling terms,
      # only through the parameters they moved).
      for path, a, b in leaves:
        if leaf_rtol > 1e-4 and path.startswith(".opt_state"):
          continue
        assert np.max(np.abs(a - b)) <= leaf_rtol * np.max(np.abs(a)) + 1e-5, (path, a.ravel()[:4], b.ravel()[:4])

    c = load_config("default")
    c.data.data_dir = {data_dir!r}
    c.balance.enabled = True
    # The VAE/GAN's float32 gradients carry up to about 1e-2 of relative rounding in some
    # tensors (sums that cancel: the last conv's bias, the BatchNorm backward passes; against
    # float64, JAX and PyTorch are both that far off), which the all-reduce's other summation
    # order shows after three steps: its leaves are held to 5e-2 of their scale, its losses
    # above to 2e-4.
    one_and_eight(c, 16, leaf_rtol=5e-2)
    c = load_config("mlvae_mnist")         # 8 groups of 4 digits: one group per device
    c.data.data_dir = {data_dir!r}
    c.train.batch_size = 32
    one_and_eight(c, 32, groups.group_dataset)
    for batch, group_size in ((12, 1), (16, 4)):
      try:
        parallel.check_batch_size(batch, parallel.make_mesh(), group_size)
      except ValueError as e:
        print("ERROR", e)
""")


def test_eight_devices_match_one_device(tfds_dir):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), data_dir=tfds_dir)],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  diffs = {line.split()[1]: line.split()[2:] for line in out.stdout.splitlines() if line.startswith("MAXDIFF")}
  assert set(diffs) == {"vaegan", "mlvae"}, out.stdout
  assert float(diffs["mlvae"][0]) < 2e-5, diffs  # one loss, no BatchNorm: equal to rounding
  assert float(diffs["vaegan"][0]) < 1e-3, diffs
  assert "global batch size 12 is not divisible by the 8 devices" in out.stdout and "multiple of 8 " in out.stdout
  assert "16 (4 groups of 4) is not divisible by the 8 devices" in out.stdout and "multiple of 32" in out.stdout


def test_batch_not_divisible_by_devices_is_a_clear_error():
  import jax
  from vaegan_jax import parallel
  mesh = parallel.make_mesh(jax.devices()[:1])
  parallel.check_batch_size(5, mesh)  # one device: anything splits
  if len(jax.devices()) > 1:
    with pytest.raises(ValueError, match="not divisible"):
      parallel.check_batch_size(len(jax.devices()) + 1, parallel.make_mesh())


def _ynn_fused_ops(hlo_text: str) -> set[str]:
  """The HLO opcodes inside the fusions that XLA:CPU hands to YNNPACK (``"kind":"__ynn_fusion"``)."""
  import re  # pylint: disable=import-outside-toplevel
  bodies = dict(re.findall(r"^%(\S+) .*?\{\n(.*?)^\}", hlo_text, re.M | re.S))
  called = re.findall(r"calls=%([\w.-]+).*\"kind\":\"__ynn_fusion\"", hlo_text)
  return {op for name in called for op in re.findall(r"= \S+ ([a-z-]+)\(", bodies.get(name, ""))}


def test_cpu_train_step_keeps_convolutions_out_of_ynnpack():
  """The compiled CPU train step: its convolutions are XLA's own, matmuls may stay in YNNPACK; a
  CPU-only option never reaches another backend."""
  import functools  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from tests.conftest import load_config  # pylint: disable=import-outside-toplevel
  from vaegan_jax import methods, parallel  # pylint: disable=import-outside-toplevel

  c = load_config("default")
  method = methods.get(c.method)
  models = method.build_models(c, (28, 28, 1))
  optimizers = method.make_optimizers(c, 10)
  state = jax.eval_shape(functools.partial(method.create_train_state, config=c, models=models, optimizers=optimizers),
                         jax.random.key(0))
  batch = {"image": jax.ShapeDtypeStruct((c.train.batch_size, 28, 28, 1), jnp.uint8)}
  mesh = parallel.make_mesh(jax.devices()[:1])
  assert parallel.compiler_options(mesh) == parallel.CPU_COMPILER_OPTIONS
  step = parallel.jit_train_step(method.make_train_step(c, models, optimizers), mesh)
  ops = _ynn_fused_ops(step.lower(state, batch).compile().as_text())
  assert "convolution" not in ops and "dot" in ops, ops
  # The check itself can fail: with jaxlib 0.10's defaults this step's convolutions go to YNNPACK.
  if jax.__version__.startswith("0.10."):
    plain = jax.jit(method.make_train_step(c, models, optimizers)).lower(state, batch).compile().as_text()
    assert "convolution" in _ynn_fused_ops(plain)

  assert parallel.compiler_options(_GpuMesh()) == {}


def test_unknown_cpu_option_falls_back_to_defaults(monkeypatch):
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(parallel, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option_anywhere": "1"})
  parallel._cpu_options_accepted.cache_clear()  # pylint: disable=protected-access
  try:
    assert parallel.compiler_options(parallel.make_mesh(jax.devices()[:1])) == {}
  finally:
    parallel._cpu_options_accepted.cache_clear()  # pylint: disable=protected-access


def test_bf16_steps_get_onednn_convolutions_where_this_jaxlib_has_them():
  """Issue 37: a bf16 step's convolutions go to oneDNN exactly where the probe finds that this
  jaxlib rewrites them (jaxlib 0.12: yes; 0.10.2 accepts the options and rewrites nothing), an
  f32 step never gets the options, and the compiled bf16 step shows the custom calls."""
  import functools  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from tests.conftest import load_config  # pylint: disable=import-outside-toplevel
  from vaegan_jax import methods, parallel  # pylint: disable=import-outside-toplevel

  mesh = parallel.make_mesh(jax.devices()[:1])
  takes = parallel._onednn_takes_bf16_convolutions()  # pylint: disable=protected-access
  assert parallel.compiler_options(mesh, "float32") == parallel.CPU_COMPILER_OPTIONS
  bf16 = parallel.compiler_options(mesh, "bfloat16")
  assert bf16 == ({**parallel.CPU_COMPILER_OPTIONS, **parallel.CPU_BF16_COMPILER_OPTIONS} if takes
                  else parallel.CPU_COMPILER_OPTIONS)
  if jax.__version__.startswith("0.10."):
    assert not takes   # the probe can say no: 0.10.2 takes the options but compiles no oneDNN call
  c = load_config("default")
  c.model.dtype = "bfloat16"
  method = methods.get(c.method)
  models = method.build_models(c, (28, 28, 1))
  optimizers = method.make_optimizers(c, 10)
  state = jax.eval_shape(functools.partial(method.create_train_state, config=c, models=models, optimizers=optimizers),
                         jax.random.key(0))
  batch = {"image": jax.ShapeDtypeStruct((c.train.batch_size, 28, 28, 1), jnp.uint8)}
  text = parallel.jit_train_step(method.make_train_step(c, models, optimizers), mesh, "bfloat16").lower(
      state, batch).compile().as_text()
  assert (parallel.ONEDNN_CUSTOM_CALL_PREFIX + "convolution" in text) == takes
  f32 = parallel.jit_train_step(method.make_train_step(c, models, optimizers), mesh).lower(state, batch).compile()
  assert parallel.ONEDNN_CUSTOM_CALL_PREFIX + "convolution" not in f32.as_text()


def test_auto_dtype_is_bf16_exactly_on_a_cpu_whose_jaxlib_runs_bf16_convolutions_in_onednn(monkeypatch):
  """Issue 37 item 4: "auto" (configs/{vaegan,vae,gan}_celeba.py) is bf16 on a CPU where the
  probe finds oneDNN bf16 convolutions, f32 on a CPU without them and on any other backend;
  explicit dtypes pass through."""
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax import parallel  # pylint: disable=import-outside-toplevel

  cpu = parallel.make_mesh(jax.devices()[:1])
  if jax.__version__.startswith("0.10."):   # this jaxlib's own answer: no oneDNN bf16, so f32
    assert parallel.compute_dtype("auto", cpu) == "float32"
  for takes in (True, False):
    monkeypatch.setattr(parallel, "_onednn_takes_bf16_convolutions", lambda takes=takes: takes)
    assert parallel.compute_dtype("auto", cpu) == ("bfloat16" if takes else "float32")
    assert parallel.compute_dtype("auto", _GpuMesh()) == "float32"
    for dtype in ("float32", "bfloat16"):
      assert parallel.compute_dtype(dtype, cpu) == parallel.compute_dtype(dtype, _GpuMesh()) == dtype
