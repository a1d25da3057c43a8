"""benchmarks/torch_vaegan.py computes the same VAE/GAN step as vaegan_jax (run when torch is installed)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch port is checked only where torch is installed "
                                           "(pip install -e '.[bench]')")

from benchmarks import torch_vaegan  # noqa: E402
from tests.conftest import load_config  # noqa: E402
from vaegan_jax import losses  # noqa: E402


def test_same_losses_in_float32_at_the_papers_widths():
  """configs/vaegan_celeba.py (33.7M parameters): equal counts, every network's loss to 1e-4."""
  result = torch_vaegan.compare_with_jax(load_config("vaegan_celeba", ""), (64, 64, 3), batch_size=4)
  assert result["parameters_jax"] == result["parameters_torch"] == 33_718_372
  assert result["loss_rel_diff"] < 1e-4, result


@pytest.mark.parametrize("config, shape", [("vaegan_celeba", (64, 64, 3)), ("default", (28, 28, 1))])
def test_same_losses_and_gradients_in_float64(config, shape):
  """In float64 both must agree to rounding (float32 rounding of the BatchNorm backward passes
  alone moves some gradients by 1e-2 of their scale, in either framework); the 28x28 variant
  covers odd sizes (7 -> 4) and the decoder's crop."""
  result = torch_vaegan.compare_with_jax(load_config(config), shape, batch_size=6, dtype="float64")
  assert result["parameters_jax"] == result["parameters_torch"]
  assert result["loss_rel_diff"] < 1e-6, result
  assert result["grad_rel_diff"] < 1e-5, result


def test_a_changed_port_is_caught():
  """The comparison can fail: a port whose decoder pads its transposed convolutions differently."""
  c = load_config("default")
  original = torch.nn.ConvTranspose2d.forward

  def shifted(self, x, output_size=None):
    return torch.roll(original(self, x, output_size), 1, dims=2)

  torch.nn.ConvTranspose2d.forward = shifted
  try:
    result = torch_vaegan.compare_with_jax(c, (28, 28, 1), batch_size=6, dtype="float64")
  finally:
    torch.nn.ConvTranspose2d.forward = original
  assert result["loss_rel_diff"] > 1e-4, result


def test_balance_masks_match_the_jax_rule():
  grid = np.linspace(0.0, 1.5, 31)
  for real in grid:
    for fake in grid:
      dec, dis = losses.balance_masks(np.float32(real), np.float32(fake), 0.68, 0.35)
      assert torch_vaegan.balance_masks(float(real), float(fake)) == (bool(dec), bool(dis)), (real, fake)


def test_train_step_updates_the_gated_networks():
  torch.manual_seed(0)
  model = torch_vaegan.from_config(load_config("default"), (28, 28, 1))
  before = {n: [p.detach().clone() for p in net.parameters()] for n, net in model.networks().items()}
  step = torch_vaegan.TrainStep(model)
  out = step(torch.rand(6, 1, 28, 28) * 2 - 1)
  update_dec, update_dis = torch_vaegan.balance_masks(float(out["real_cost"]), float(out["fake_cost"]))
  gates = {"encoder": True, "decoder": update_dec, "discriminator": update_dis}
  for name, net in model.networks().items():
    moved = any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters()))
    assert moved == gates[name], name
