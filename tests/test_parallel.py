"""Data parallelism on 8 simulated CPU devices equals the 1-device step (VAE/GAN, and ML-VAE with
its groups kept whole on one device each), in one subprocess."""

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
    from vaegan_jax.data import groups
    assert len(jax.devices()) == 8, jax.devices()

    def one_and_eight(c, batch_size, dataset=None):
      # Adam's and RMSProp's eps=1e-8 divide near-zero gradient entries by their own size,
      # turning the all-reduce's float reordering (1e-7) into full-size updates; eps=1 keeps the
      # update near-linear in the gradient so that the test measures the parallelism itself.
      for name in ("encoder", "decoder", "discriminator"):
        c.optim[name].eps = 1.0
      batches = [next(it) for it in [data.train_iterator(c, batch_size, seed=0, dataset=dataset)] for _ in range(3)]
      finals = []
      for devices in (jax.devices()[:1], jax.devices()):
        run = trainer.setup(c, devices)
        state = run.init_state()
        step = parallel.jit_train_step(run.method.make_train_step(c, run.models, run.optimizers), run.mesh)
        for b in batches:
          sharded = parallel.shard_batch(b, run.mesh)
          assert len(sharded["image"].sharding.device_set) == len(devices)
          state, m = step(state, sharded)
        assert len(state.params["encoder"]["mu"]["kernel"].sharding.device_set) == len(devices)
        finals.append(jax.device_get(state))
      diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)))
      print("MAXDIFF", c.method, diff)
      for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # batch stats and optimizer states too

    c = load_config("default")
    c.data.data_dir = {data_dir!r}
    c.balance.enabled = True
    one_and_eight(c, 16)
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
  diffs = dict(line.split()[1:] for line in out.stdout.splitlines() if line.startswith("MAXDIFF"))
  assert set(diffs) == {"vaegan", "mlvae"}, out.stdout
  for method, diff in diffs.items():
    assert float(diff) < 2e-5, (method, diff)
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
