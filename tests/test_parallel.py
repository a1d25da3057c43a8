"""Data parallelism on 8 simulated CPU devices equals the 1-device step."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from tests.conftest import load_config
    from vaegan_jax import data, parallel, trainer
    from vaegan_jax.methods import vaegan
    assert len(jax.devices()) == 8, jax.devices()
    c = load_config("default")
    c.data.data_dir = {data_dir!r}
    c.balance.enabled = True
    # RMSProp's eps=1e-8 divides near-zero gradient entries by their own size, turning the
    # all-reduce's float reordering (1e-7) into full-size updates; eps=1 keeps the update
    # near-linear in the gradient so that the test measures the parallelism itself.
    for name in ("encoder", "decoder", "discriminator"):
      c.optim[name].eps = 1.0
    batches = [next(it) for it in [data.train_iterator(c, 16, seed=0)] for _ in range(3)]
    finals = []
    for devices in (jax.devices()[:1], jax.devices()):
      run = trainer.setup(c, devices)
      state = run.init_state()
      step = parallel.jit_train_step(vaegan.make_train_step(c, run.models, run.optimizers), run.mesh)
      for b in batches:
        state, m = step(state, parallel.shard_batch(b, run.mesh))
      assert len(state.params["encoder"]["mu"]["kernel"].sharding.device_set) == len(devices)
      finals.append(jax.device_get(state))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)))
    print("MAXDIFF", diff)
    for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # batch stats and optimizer states too
    try:
      parallel.check_batch_size(12, parallel.make_mesh())
    except ValueError as e:
      print("ERROR", e)
""")


def test_eight_devices_match_one_device(tfds_dir):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), data_dir=tfds_dir)],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  diff = float(out.stdout.split("MAXDIFF")[1].split()[0])
  assert diff < 2e-5, diff
  assert "not divisible by the 8 devices" in out.stdout and "multiple of 8" in out.stdout


def test_batch_not_divisible_by_devices_is_a_clear_error():
  import jax
  from vaegan_jax import parallel
  mesh = parallel.make_mesh(jax.devices()[:1])
  parallel.check_batch_size(5, mesh)  # one device: anything splits
  if len(jax.devices()) > 1:
    with pytest.raises(ValueError, match="not divisible"):
      parallel.check_batch_size(len(jax.devices()) + 1, parallel.make_mesh())
