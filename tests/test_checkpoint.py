"""Checkpoint round trip and exact resume."""

import jax
import numpy as np
import pytest

from vaegan_jax import trainer
from vaegan_jax.checkpoint import Checkpointer


def _leaves_equal(a, b, atol=0.0):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_round_trip_restores_the_exact_state(smoke_config, tmp_path):
  run = trainer.setup(smoke_config)
  state = run.init_state()
  ckpt = Checkpointer(str(tmp_path / "ckpt"), async_save=True)
  ckpt.save(5, state, {"next_index": 5}, {"method": "vaegan"})
  ckpt.wait_until_finished()
  restored, data_state, config = ckpt.restore(5, run.abstract_state())
  ckpt.close()
  assert jax.tree.structure(restored) == jax.tree.structure(state)  # optax state types included
  _leaves_equal(restored, state)
  assert data_state == {"next_index": 5} and config == {"method": "vaegan"}
  with pytest.raises(FileNotFoundError, match="saved steps"):
    Checkpointer(str(tmp_path / "ckpt")).restore(7, run.abstract_state())


def test_resume_refuses_a_workdir_of_another_model(smoke_config, tmp_path):
  c = smoke_config
  c.train.num_steps = 3
  trainer.train_and_evaluate(c, str(tmp_path / "run"))
  c.method, c.loss.llike = "vae", "pixel"
  with pytest.raises(ValueError, match="another model"):
    trainer.train_and_evaluate(c, str(tmp_path / "run"))
