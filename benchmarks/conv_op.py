"""One convolution of the 64x64 VAE/GAN step, forward and both gradients: JAX against PyTorch; prints GFLOP/s.

  python benchmarks/conv_op.py --impl jax --dtype bfloat16
  XLA_FLAGS="--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true" \\
      python benchmarks/conv_op.py --impl jax --dtype bfloat16          # with an XLA:CPU setting
  python benchmarks/conv_op.py --impl torch --dtype bfloat16            # PyTorch's oneDNN, bf16 tensors

The default shape is the discriminator's second convolution at batch 64 (three batches: data,
reconstructions, prior samples): input 192x32x32x64 (NHWC), 5x5 kernel, stride 2, PyTorch's
padding 2, 128 output channels. One call computes the forward output and the gradients with
respect to the input and the kernel (``jax.vjp`` / ``autograd``), so the FLOPs are three
times the forward's ``2 N Ho Wo Cout K K Cin`` (60.4 GFLOP at the default shape). Prints one
JSON line: the median seconds over ``--steps`` calls after two warm-up calls, and GFLOP/s;
``--part forward|input_grad|kernel_grad`` times one of the three alone (a third of the FLOPs);
``--ours`` times the models' ``layers.strided_conv`` (its input gradient in the sub-pixel form).
Run the settings one after another, alternating, in the same minutes (the machine is shared):
the figures are only comparable as ratios measured side by side. XLA reads ``XLA_FLAGS`` at
start-up, so each setting is its own process. The study: benchmarks/README.md, "bf16 on the CPU".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--impl", choices=("jax", "torch"), required=True)
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
  parser.add_argument("--batch", type=int, default=192)
  parser.add_argument("--size", type=int, default=32, help="input height and width")
  parser.add_argument("--cin", type=int, default=64)
  parser.add_argument("--cout", type=int, default=128)
  parser.add_argument("--kernel", type=int, default=5)
  parser.add_argument("--stride", type=int, default=2)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--threads", type=int, default=0, help="PyTorch intra-op threads (default: cores)")
  parser.add_argument("--ours", action="store_true",
                      help="JAX: the models' layers.strided_conv (input gradient in the sub-pixel form, no input "
                           "dilation) instead of lax.conv_general_dilated and its autodiff")
  parser.add_argument("--part", choices=("all", "forward", "input_grad", "kernel_grad"), default="all",
                      help="time the forward and both gradients (all), or one of them alone")
  args = parser.parse_args()
  n, s, cin, cout, k, stride = args.batch, args.size, args.cin, args.cout, args.kernel, args.stride
  pad = (k - 1) // 2
  out_size = (s + 2 * pad - k) // stride + 1
  flops = (3 if args.part == "all" else 1) * 2 * n * out_size * out_size * cout * k * k * cin

  if args.impl == "jax":
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    key_x, key_w = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (n, s, s, cin), dtype)
    w = jax.random.normal(key_w, (k, k, cin, cout), dtype) * 0.05

    def conv(x, w):
      if args.ours:
        from vaegan_jax.models import layers  # pylint: disable=import-outside-toplevel
        return layers.strided_conv(x, w, (pad, pad))
      return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y = conv(x, w)   # the output as its own cotangent: any tensor of its shape costs the same
    parts = {"all": lambda x, w, y: (lambda out, vjp: (out, *vjp(y)))(*jax.vjp(conv, x, w)),
             "forward": lambda x, w, y: conv(x, w),
             "input_grad": lambda x, w, y: jax.vjp(lambda x: conv(x, w), x)[1](y),
             "kernel_grad": lambda x, w, y: jax.vjp(lambda w: conv(x, w), w)[1](y)}
    compiled = jax.jit(parts[args.part])

    def call():
      jax.block_until_ready(compiled(x, w, y))
    version = f"jax {jax.__version__}" + (" layers.strided_conv" if args.ours else " lax")
  else:
    import torch  # pylint: disable=import-outside-toplevel
    if args.threads:
      torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    torch.manual_seed(0)
    x = torch.randn(n, cin, s, s, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(cout, cin, k, k, dtype=dtype) * 0.05).contiguous(memory_format=torch.channels_last)
    w.requires_grad_()

    x.requires_grad_(args.part in ("all", "input_grad"))
    w.requires_grad_(args.part in ("all", "kernel_grad"))

    def call():
      x.grad = w.grad = None
      if args.part == "forward":
        with torch.no_grad():
          torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
        return
      y = torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
      y.backward(y.detach())
    version = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"

  for _ in range(2):
    call()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  print(json.dumps({"impl": version, "dtype": args.dtype, "part": args.part, "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "shape": f"{n}x{s}x{s}x{cin} -> {cout}, {k}x{k} stride {stride}",
                    "seconds": round(seconds, 4), "gflops_per_second": round(flops / seconds / 1e9, 1)}), flush=True)


if __name__ == "__main__":
  main()
