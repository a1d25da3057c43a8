"""The VAE/GAN network and train step of ``configs/vaegan_celeba.py``, written in PyTorch.

The comparison point of ``benchmarks/run.py``: the same three networks (Larsen et al. 2016,
the original code's ``img64x64`` widths: encoder dense 1024, Dis_l taken before the 4th
convolution's BatchNorm), the same losses (KL, Gaussian Dis_l likelihood, the discriminator's
binary cross-entropy on real, reconstructed and prior-sample images, the non-saturating
generator term), the same equilibrium masks (0.68 / 0.35) and three RMSProp optimizers with
weight decay, as ``vaegan_jax.methods.vaegan.make_train_step`` computes them. Layers are the
ones a PyTorch port writes (``Conv2d(c, f, 5, 2, 2)``, ``ConvTranspose2d(c, f, 5, 2, 2,
output_padding=1)``, ``BatchNorm2d``), so PyTorch runs its own kernels (oneDNN on CPU, cuDNN on
GPU) with nothing rewritten.

``load_jax_state`` copies a JAX train state's parameters and BatchNorm statistics into the
modules; ``tests/test_torch_port.py`` and ``benchmarks/run.py`` then check that both compute
the same losses and gradients on the same batch and noise.

Differences that do not change the computation's cost: ``torch.optim.RMSprop`` adds its
epsilon outside the square root (optax inside), and the step does not check for non-finite
values (the JAX step does, and skips such steps); the learning rate is constant (the JAX
schedule decays per epoch).

torch is not a dependency of vaegan_jax: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _bn2d(c: int, momentum: float, eps: float) -> nn.BatchNorm2d:
  # flax's momentum m keeps m of the running value; PyTorch's keeps 1 - momentum.
  return nn.BatchNorm2d(c, eps=eps, momentum=1.0 - momentum)


def _bn1d(c: int, momentum: float, eps: float) -> nn.BatchNorm1d:
  return nn.BatchNorm1d(c, eps=eps, momentum=1.0 - momentum)


class Encoder(nn.Module):
  """q(z|x): 3 x [conv 5x5 stride 2, BN, ReLU], dense + BN + ReLU, heads mu and logvar."""

  def __init__(self, image_shape=(64, 64, 3), latent_dim=128, features=(64, 128, 256), dense=1024,
               bn_momentum=0.9, bn_epsilon=1e-6):
    super().__init__()
    h, w, c = image_shape
    layers = []
    for f in features:
      layers += [nn.Conv2d(c, f, 5, 2, 2, bias=False), _bn2d(f, bn_momentum, bn_epsilon), nn.ReLU(inplace=True)]
      c, h, w = f, (h + 1) // 2, (w + 1) // 2
    self.convs = nn.Sequential(*layers)
    self.final = (c, h, w)  # the flattened feature map
    self.fc = nn.Sequential(nn.Linear(c * h * w, dense, bias=False), _bn1d(dense, bn_momentum, bn_epsilon),
                            nn.ReLU(inplace=True))
    self.mu = nn.Linear(dense, latent_dim)
    self.logvar = nn.Linear(dense, latent_dim)

  def forward(self, x):
    h = self.fc(self.convs(x).flatten(1))
    return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
  """p(x|z): dense + BN + ReLU to 8x8x256, 3 x [transposed conv 5x5 stride 2, BN, ReLU], conv 5x5, tanh."""

  def __init__(self, image_shape=(64, 64, 3), latent_dim=128, features=(256, 128, 32), bn_momentum=0.9,
               bn_epsilon=1e-6):
    super().__init__()
    h, w, c = image_shape
    scale = 2 ** len(features)
    self.start = (features[0], math.ceil(h / scale), math.ceil(w / scale))
    n = int(np.prod(self.start))
    self.fc = nn.Sequential(nn.Linear(latent_dim, n, bias=False), _bn1d(n, bn_momentum, bn_epsilon),
                            nn.ReLU(inplace=True))
    layers, c_in = [], features[0]
    for f in features:
      layers += [nn.ConvTranspose2d(c_in, f, 5, 2, 2, output_padding=1, bias=False),
                 _bn2d(f, bn_momentum, bn_epsilon), nn.ReLU(inplace=True)]
      c_in = f
    layers += [nn.Conv2d(c_in, c, 5, 1, 2), nn.Tanh()]
    self.convs = nn.Sequential(*layers)
    self.image_hw = (h, w)

  def forward(self, z):
    h = self.fc(z).view(z.shape[0], *self.start)
    if self.convs[0].weight.is_contiguous(memory_format=torch.channels_last):
      h = h.contiguous(memory_format=torch.channels_last)
    out = self.convs(h)
    top, left = (out.shape[2] - self.image_hw[0]) // 2, (out.shape[3] - self.image_hw[1]) // 2
    return out[:, :, top:top + self.image_hw[0], left:left + self.image_hw[1]]


class Discriminator(nn.Module):
  """conv 5x5 + ReLU, 3 x [conv 5x5 stride 2, BN, ReLU], dense + BN + ReLU, dense 1.

  Returns (logits [batch], Dis_l = the last strided conv's output before its BatchNorm).
  """

  def __init__(self, image_shape=(64, 64, 3), features=(32, 128, 256, 256), dense=512, bn_momentum=0.9,
               bn_epsilon=1e-6):
    super().__init__()
    h, w, c = image_shape
    self.conv0 = nn.Conv2d(c, features[0], 5, 1, 2)
    self.strided = nn.ModuleList()
    self.bns = nn.ModuleList()
    c = features[0]
    for f in features[1:]:
      self.strided.append(nn.Conv2d(c, f, 5, 2, 2, bias=False))
      self.bns.append(_bn2d(f, bn_momentum, bn_epsilon))
      c, h, w = f, (h + 1) // 2, (w + 1) // 2
    self.final = (c, h, w)
    self.fc = nn.Sequential(nn.Linear(c * h * w, dense, bias=False), _bn1d(dense, bn_momentum, bn_epsilon),
                            nn.ReLU(inplace=True))
    self.logit = nn.Linear(dense, 1)

  def forward(self, x):
    h = F.relu(self.conv0(x))
    dis_l = h
    for conv, bn in zip(self.strided, self.bns):
      dis_l = conv(h)
      h = F.relu(bn(dis_l))
    return self.logit(self.fc(h.flatten(1)))[:, 0], dis_l


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
  return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class VAEGAN(nn.Module):
  """The three networks and the VAE/GAN losses of ``vaegan_jax.methods.vaegan.compute_losses``."""

  def __init__(self, image_shape=(64, 64, 3), latent_dim=128, encoder_features=(64, 128, 256), encoder_dense=1024,
               decoder_features=(256, 128, 32), discriminator_features=(32, 128, 256, 256), discriminator_dense=512,
               bn_momentum=0.9, bn_epsilon=1e-6, gamma=1e-3):
    super().__init__()
    bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.encoder = Encoder(image_shape, latent_dim, encoder_features, encoder_dense, **bn)
    self.decoder = Decoder(image_shape, latent_dim, decoder_features, **bn)
    self.discriminator = Discriminator(image_shape, discriminator_features, discriminator_dense, **bn)
    self.latent_dim, self.gamma = latent_dim, gamma

  def losses(self, x: torch.Tensor, eps: torch.Tensor, z_p: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every network's loss and the balancing costs.

    Args:
      x: f32[batch, c, h, w] images in [-1, 1].
      eps: f32[batch, latent] the posterior sample's standard normal noise.
      z_p: f32[batch, latent] prior samples.

    Returns:
      f32 scalars: encoder, decoder, discriminator (each network's loss), kl, llike,
      real_cost, fake_cost.
    """
    batch = x.shape[0]
    mu, logvar = self.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    kl = torch.mean(0.5 * torch.sum(torch.exp(logvar) + mu * mu - 1.0 - logvar, dim=1))
    x_recon, x_prior = self.decoder(torch.cat([z, z_p])).split(batch)
    logits, dis_l = self.discriminator(torch.cat([x, x_recon, x_prior]))
    l_x, l_recon, l_prior = logits.split(batch)
    d_x, d_recon, _ = dis_l.split(batch)
    llike = torch.mean(torch.sum(0.5 * torch.square(d_x - d_recon) + _HALF_LOG_2PI, dim=(1, 2, 3)))
    real_cost = _bce(l_x, 1.0)
    fakes = (_bce(l_recon, 0.0), _bce(l_prior, 0.0))
    adversarial = _bce(l_recon, 1.0) + _bce(l_prior, 1.0)
    return {"encoder": kl + llike, "decoder": self.gamma * llike + adversarial,
            "discriminator": real_cost + fakes[0] + fakes[1], "kl": kl, "llike": llike,
            "real_cost": real_cost, "fake_cost": 0.5 * (fakes[0] + fakes[1])}

  def networks(self) -> dict[str, nn.Module]:
    return {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}

  def gradients(self, losses: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, ...]]:
    """Each network's gradient of its own loss (three pullbacks of the one forward pass)."""
    names = list(self.networks())
    grads = {}
    for i, name in enumerate(names):
      params = tuple(self.networks()[name].parameters())
      grads[name] = torch.autograd.grad(losses[name], params, retain_graph=i < len(names) - 1)
    return grads


def balance_masks(real_cost: float, fake_cost: float, equilibrium: float = 0.68, margin: float = 0.35):
  """(update_decoder, update_discriminator) as ``vaegan_jax.losses.balance_masks``, on host floats."""
  skip_dis = real_cost < equilibrium - margin or fake_cost < equilibrium - margin
  skip_dec = real_cost > equilibrium + margin or fake_cost > equilibrium + margin
  both = skip_dis and skip_dec
  return (not skip_dec) or both, (not skip_dis) or both


class TrainStep:
  """``(images) -> losses``: one VAE/GAN train step with three RMSProp optimizers.

  Args:
    model: a ``VAEGAN``.
    learning_rate, rmsprop_decay, eps, weight_decay: the optimizers' settings (the config's).
    compile: compile the forward pass with ``torch.compile`` (Inductor generates its forward
      and backward kernels; the three pullbacks stay three calls of the autograd engine).
    autocast: a dtype (``torch.bfloat16``) to run the forward pass under ``torch.autocast``;
      parameters, gradients and optimizer states stay f32.
  """

  def __init__(self, model: VAEGAN, learning_rate: float = 3e-4, rmsprop_decay: float = 0.9, eps: float = 1e-8,
               weight_decay: float = 1e-5, compile: bool = False, autocast: torch.dtype | None = None):
    self.model = model
    self.optimizers = {name: torch.optim.RMSprop(net.parameters(), lr=learning_rate, alpha=rmsprop_decay, eps=eps,
                                                 weight_decay=weight_decay, foreach=True)
                       for name, net in model.networks().items()}
    if compile:
      # The three pullbacks retain the graph for one another, which a compiled backward that
      # donates its saved buffers refuses ("non-empty donated buffers ... retain_graph=False").
      torch._functorch.config.donated_buffer = False  # pylint: disable=protected-access
    self.losses = torch.compile(model.losses) if compile else model.losses
    self.autocast = autocast

  def __call__(self, x: torch.Tensor, eps: torch.Tensor | None = None,
               z_p: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    shape = (x.shape[0], self.model.latent_dim)
    eps = torch.randn(shape, device=x.device, dtype=x.dtype) if eps is None else eps
    z_p = torch.randn(shape, device=x.device, dtype=x.dtype) if z_p is None else z_p
    if self.autocast is None:
      losses = self.losses(x, eps, z_p)
    else:
      with torch.autocast(x.device.type, dtype=self.autocast):
        losses = self.losses(x, eps, z_p)
    grads = self.model.gradients(losses)
    update_dec, update_dis = balance_masks(float(losses["real_cost"].detach()), float(losses["fake_cost"].detach()))
    gates = {"encoder": True, "decoder": update_dec, "discriminator": update_dis}
    for name, net in self.model.networks().items():
      if gates[name]:
        for p, g in zip(net.parameters(), grads[name]):
          p.grad = g
        self.optimizers[name].step()
    return losses


def num_parameters(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------
# JAX parameters -> PyTorch modules


def _t(a: Any) -> torch.Tensor:
  return torch.from_numpy(np.array(a, dtype=np.float64))


def _set(param: torch.Tensor, value: torch.Tensor) -> None:
  if tuple(param.shape) != tuple(value.shape):
    raise ValueError(f"shape {tuple(value.shape)} does not fit the parameter's {tuple(param.shape)}")
  with torch.no_grad():
    param.copy_(value)  # in the parameter's own dtype


def _load_bn(bn: nn.Module, params: dict, stats: dict | None, order: np.ndarray | None = None) -> None:
  pick = (lambda a: a) if order is None else (lambda a: a[order])
  _set(bn.weight, pick(_t(params["scale"])))
  _set(bn.bias, pick(_t(params["bias"])))
  if stats is not None:
    _set(bn.running_mean, pick(_t(stats["mean"])))
    _set(bn.running_var, pick(_t(stats["var"])))


def _conv_weight(kernel) -> torch.Tensor:
  """flax HWIO [kh, kw, in, out] -> PyTorch Conv2d OIHW."""
  return _t(kernel).permute(3, 2, 0, 1)


def _nhwc_flat_to_nchw(c: int, h: int, w: int) -> np.ndarray:
  """order[i] = the NHWC-flattened index of the NCHW-flattened feature i."""
  return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _load_encoder(enc: Encoder, p: dict, s: dict | None) -> None:
  convs = [m for m in enc.convs if isinstance(m, nn.Conv2d)]
  bns = [m for m in enc.convs if isinstance(m, nn.BatchNorm2d)]
  stat = (lambda name: None) if s is None else (lambda name: s[name])  # noqa: E731
  for i, (conv, bn) in enumerate(zip(convs, bns)):
    _set(conv.weight, _conv_weight(p[f"Conv_{i}"]["kernel"]))
    _load_bn(bn, p[f"BatchNorm_{i}"], stat(f"BatchNorm_{i}"))
  order = _nhwc_flat_to_nchw(*enc.final)
  _set(enc.fc[0].weight, _t(p["Dense_0"]["kernel"])[order].T)
  _load_bn(enc.fc[1], p[f"BatchNorm_{len(convs)}"], stat(f"BatchNorm_{len(convs)}"))
  for name in ("mu", "logvar"):
    _set(getattr(enc, name).weight, _t(p[name]["kernel"]).T)
    _set(getattr(enc, name).bias, _t(p[name]["bias"]))


def _load_decoder(dec: Decoder, p: dict, s: dict | None) -> None:
  stat = (lambda name: None) if s is None else (lambda name: s[name])  # noqa: E731
  order = _nhwc_flat_to_nchw(*dec.start)
  _set(dec.fc[0].weight, _t(p["Dense_0"]["kernel"])[:, order].T)
  _load_bn(dec.fc[1], p["BatchNorm_0"], stat("BatchNorm_0"), order)
  deconvs = [m for m in dec.convs if isinstance(m, nn.ConvTranspose2d)]
  bns = [m for m in dec.convs if isinstance(m, nn.BatchNorm2d)]
  for i, (deconv, bn) in enumerate(zip(deconvs, bns)):
    _set(deconv.weight, _t(p[f"SubpixelConvTranspose_{i}"]["kernel"]).permute(2, 3, 0, 1))
    _load_bn(bn, p[f"BatchNorm_{i + 1}"], stat(f"BatchNorm_{i + 1}"))
  final = [m for m in dec.convs if isinstance(m, nn.Conv2d) and not isinstance(m, nn.ConvTranspose2d)][-1]
  _set(final.weight, _conv_weight(p["Conv_0"]["kernel"]))
  _set(final.bias, _t(p["Conv_0"]["bias"]))


def _load_discriminator(dis: Discriminator, p: dict, s: dict | None) -> None:
  stat = (lambda name: None) if s is None else (lambda name: s[name])  # noqa: E731
  _set(dis.conv0.weight, _conv_weight(p["Conv_0"]["kernel"]))
  _set(dis.conv0.bias, _t(p["Conv_0"]["bias"]))
  for i, (conv, bn) in enumerate(zip(dis.strided, dis.bns)):
    _set(conv.weight, _conv_weight(p[f"Conv_{i + 1}"]["kernel"]))
    _load_bn(bn, p[f"BatchNorm_{i}"], stat(f"BatchNorm_{i}"))
  order = _nhwc_flat_to_nchw(*dis.final)
  _set(dis.fc[0].weight, _t(p["Dense_0"]["kernel"])[order].T)
  _load_bn(dis.fc[1], p[f"BatchNorm_{len(dis.bns)}"], stat(f"BatchNorm_{len(dis.bns)}"))
  _set(dis.logit.weight, _t(p["logit"]["kernel"]).T)
  _set(dis.logit.bias, _t(p["logit"]["bias"]))


_LOADERS = {"encoder": _load_encoder, "decoder": _load_decoder, "discriminator": _load_discriminator}


def load_jax_state(model: VAEGAN, params: dict, batch_stats: dict) -> None:
  """Copies JAX parameters and BatchNorm statistics of ``methods.vaegan`` into ``model``.

  Layouts: convolution kernels HWIO -> OIHW, transposed-convolution kernels [kh, kw, in, out]
  -> [in, out, kh, kw], dense kernels transposed, and the features of every dense layer next
  to a feature map permuted from NHWC to NCHW flattening order.

  Args:
    model: a ``VAEGAN`` built with the same widths and image shape.
    params, batch_stats: ``TrainState.params`` / ``.batch_stats`` ({network: flax tree}).

  Raises:
    ValueError: a parameter's shape does not fit (other widths or image shape).
  """
  for name, net in model.networks().items():
    _LOADERS[name](net, params[name], batch_stats[name])


def from_config(config, image_shape: Sequence[int]) -> VAEGAN:
  """A ``VAEGAN`` with the widths of a vaegan_jax config (``configs/vaegan_celeba.py``)."""
  m = config.model
  return VAEGAN(tuple(image_shape), m.latent_dim, tuple(m.encoder_features), m.encoder_dense,
                tuple(m.decoder_features), tuple(m.discriminator_features), m.discriminator_dense,
                m.bn_momentum, m.bn_epsilon, config.loss.gamma)


def compare_with_jax(config, image_shape: Sequence[int], batch_size: int = 8, device: str = "cpu",
                     seed: int = 0, dtype: str = "float32") -> dict[str, Any]:
  """Runs the JAX VAE/GAN and this port on the same parameters, batch and noise; compares them.

  JAX parameters of ``config`` (``methods.vaegan``) are copied into a ``VAEGAN``; both compute
  every loss and each network's gradient of its own loss on one random batch, with the
  posterior noise and prior samples that the JAX step draws from its key.

  In float32 the losses agree to about 1e-7 but gradients only to about 1e-2 of each tensor's
  largest entry: the BatchNorm backward passes cancel large terms, and against a float64
  reference both float32 implementations are that far off (PyTorch a little more than JAX).
  ``dtype="float64"`` runs both in float64 (JAX with x64 enabled, the networks' compute dtype
  set to float64), where they must agree to rounding: the exact check of equivalence.

  Returns:
    {"dtype"; "parameters_jax", "parameters_torch": counts; "loss_rel_diff": max over the
    networks' losses of |jax - torch| / |jax|; "grad_rel_diff": max over every parameter tensor
    of max|g_jax - g_torch| / max|g_jax|; "grad_rel_diff_worst": that tensor per network}.
  """
  import functools  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from vaegan_jax.methods import vaegan  # pylint: disable=import-outside-toplevel
  config = config.copy_and_resolve_references()
  config.model.dtype = dtype
  np_dtype, torch_dtype = (np.float64, torch.float64) if dtype == "float64" else (np.float32, torch.float32)
  with jax.enable_x64(dtype == "float64"):
    models = vaegan.build_models(config, tuple(image_shape))
    optimizers = vaegan.make_optimizers(config, 100)
    state = jax.jit(functools.partial(vaegan.create_train_state, config=config, models=models,
                                      optimizers=optimizers))(jax.random.key(seed))
    x = jax.random.uniform(jax.random.key(seed + 1), (batch_size, *image_shape), np_dtype, minval=-1.0, maxval=1.0)
    key = jax.random.key(seed + 2)
    grads, _, losses, _ = jax.jit(lambda p, s, x, k: vaegan.loss_and_grads(models, config, p, s, x, k))(
        state.params, state.batch_stats, x, key)
    key_eps, key_prior = jax.random.split(key)  # as compute_losses draws them
    eps = jax.random.normal(key_eps, (batch_size, config.model.latent_dim), np_dtype)
    z_p = jax.random.normal(key_prior, (batch_size, config.model.latent_dim), np_dtype)
    losses, grads = jax.device_get((losses, grads))

  model = from_config(config, image_shape)
  load_jax_state(model, state.params, state.batch_stats)
  model = model.to(device=device, dtype=torch_dtype)
  as_torch = lambda a: torch.from_numpy(np.array(a, dtype=np_dtype)).to(device)  # noqa: E731
  theirs = model.losses(as_torch(x).permute(0, 3, 1, 2).contiguous(), as_torch(eps), as_torch(z_p))
  their_grads = model.gradients(theirs)
  loss_diff = max(abs(float(losses[n]) - float(theirs[n].detach())) / abs(float(losses[n])) for n in grads)
  worst = {}
  for name, net in model.networks().items():
    by_name = {n: g.detach().cpu().double().numpy() for (n, _), g in zip(net.named_parameters(), their_grads[name])}
    ours = _jax_grads_in_torch_layout(model, name, grads[name])
    diffs = {n: float(np.max(np.abs(ours[n] - by_name[n]))) / max(float(np.max(np.abs(ours[n]))), 1e-30) for n in ours}
    worst[name] = max(diffs.items(), key=lambda kv: kv[1])
  return {"dtype": dtype, "parameters_jax": int(sum(np.prod(a.shape) for a in jax.tree.leaves(state.params))),
          "parameters_torch": num_parameters(model), "loss_rel_diff": loss_diff,
          "grad_rel_diff": max(d for _, d in worst.values()),
          "grad_rel_diff_worst": {name: f"{param} {d:.1e}" for name, (param, d) in worst.items()}}


def _jax_grads_in_torch_layout(model: VAEGAN, network: str, grads) -> dict[str, np.ndarray]:
  """A network's JAX gradient tree as {PyTorch parameter name: array}, by the parameter mapping."""
  import copy  # pylint: disable=import-outside-toplevel
  shadow = copy.deepcopy(model.networks()[network]).cpu().double()
  _LOADERS[network](shadow, grads, None)
  return {n: p.detach().numpy().copy() for n, p in shadow.named_parameters()}


def main() -> None:
  """``python benchmarks/torch_vaegan.py [--bf16] [--nchw] [--batch 64] [--steps 6] [--profile]``: median
  seconds per step of the PyTorch step at ``configs/vaegan_celeba.py``'s widths, one process
  (the side-by-side partner of ``benchmarks/step_time.py`` for a JAX that runs on another
  Python, e.g. jaxlib 0.12 on 3.12 against the torch wheel of 3.11). ``--profile`` then traces
  one more step with ``torch.profiler`` and prints its operators by self time and the share of
  the convolutions (forward and backward), the partner of ``benchmarks/profile_step.py``."""
  import argparse  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  import statistics  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("--bf16", action="store_true", help="forward under torch.autocast(bfloat16)")
  parser.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
  parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: cores)")
  parser.add_argument("--profile", action="store_true", help="then trace one step and print its operators by self time")
  parser.add_argument("--top", type=int, default=20, help="operators printed with --profile")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import vaegan_celeba  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  model = from_config(vaegan_celeba.get_config(), (64, 64, 3))
  x = torch.rand(args.batch, 3, 64, 64) * 2 - 1
  if not args.nchw:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  step = TrainStep(model, autocast=torch.bfloat16 if args.bf16 else None)
  for _ in range(2):
    step(x)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step(x)
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  print(f"torch {torch.__version__} eager {'NCHW' if args.nchw else 'channels_last'} {'bf16 autocast' if args.bf16 else 'f32'} "
        f"batch {args.batch} ({torch.get_num_threads()} threads): {seconds:.3f} s/step, {args.batch / seconds:.2f} images/s")
  if args.profile:
    print_profile(step, x, args.top)


def print_profile(step: "TrainStep", x: torch.Tensor, top: int) -> None:
  """Trace one ``step(x)`` with ``torch.profiler`` and print the ``top`` operators by self CPU
  time, then the step's wall time split into convolutions (any operator whose name has
  "convolution", forward and backward) and the rest. Self times do not overlap (PyTorch runs
  one operator at a time, each on all intra-op threads), so they add up to the step."""
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=import-outside-toplevel
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    step(x)
  averages = prof.key_averages()
  print(averages.table(sort_by="self_cpu_time_total", row_limit=top))
  total = sum(a.self_cpu_time_total for a in averages)
  conv = sum(a.self_cpu_time_total for a in averages if "convolution" in a.key)
  print(f"self time {total / 1e6:.3f} s: convolutions {conv / 1e6:.3f} s ({conv / total:.0%}), "
        f"the rest {(total - conv) / 1e6:.3f} s")


if __name__ == "__main__":
  main()
