"""How fast explore.py answers a slider move: HTTP round trips of /api/decode on a checkpoint.

  VAEGAN_DATA_DIR=../shared/data python benchmarks/explorer_latency.py --workdir runs/vaegan_celeba

Serves the explorer in-process on a free port and sends ``--requests`` decode requests, each
a random test image's code with a random move of one random slider (as a person dragging
one slider), one after another as the page sends them. Prints the median and the 90th and
99th percentiles of the round trip (request to decoded PNG in hand, in ms) and of the
decoder call alone, after ``--warmup`` requests that compile the jitted decoder.
"""

import argparse
import json
import threading
import time
import urllib.request

import numpy as np

import vaegan_jax
from vaegan_jax.explorer import server


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--requests", type=int, default=200)
  parser.add_argument("--warmup", type=int, default=5)
  args = parser.parse_args()
  explorer = server.Explorer.from_model(vaegan_jax.load(args.workdir, args.step))
  http = server.make_server(explorer, "127.0.0.1", 0)
  threading.Thread(target=http.serve_forever, daemon=True).start()
  url = f"http://127.0.0.1:{http.server_address[1]}/api/decode"
  rng = np.random.default_rng(0)
  ids = list(explorer.directions)
  round_trips, decoder = [], []
  for i in range(args.warmup + args.requests):
    d = explorer.directions[ids[rng.integers(len(ids))]]
    body = {"code": [float(v) for v in explorer.codes[rng.integers(len(explorer.codes))]],
            "moves": {d.id: float(rng.uniform(d.low, d.high))}}
    start = time.perf_counter()
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
      answer = json.loads(response.read())
    if i >= args.warmup:
      round_trips.append(1000 * (time.perf_counter() - start))
      decoder.append(answer["decode_ms"])
  http.shutdown()
  q = lambda a: " / ".join(f"{np.percentile(a, p):.1f}" for p in (50, 90, 99))  # noqa: E731
  print(f"{explorer.model}: {len(ids)} sliders, {args.requests} slider moves")
  print(f"round trip ms (median / p90 / p99): {q(round_trips)}")
  print(f"decoder ms    (median / p90 / p99): {q(decoder)}")


if __name__ == "__main__":
  main()
