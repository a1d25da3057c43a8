#!/usr/bin/env bash
# Anomaly detection with the AAE, one-class protocol: for each digit d, train on d only
# (--config.aae.normal_class=d), then score every test digit by its reconstruction error
# (and the combined score); eval.py reports the ROC AUC of telling the other digits from d.
#   VAEGAN_DATA_DIR=../shared/data scripts/aae_anomaly.sh [extra train.py flags]
# Leaves runs/aae_anomaly_<d>, runs/aae_anomaly/comparison.{md,png} and runs/aae_anomaly/summary.md
# (per class and the mean). Default: 20 epochs of the ~5,000 training images of each digit.
set -euo pipefail
RUNS=()
for d in 0 1 2 3 4 5 6 7 8 9; do
  python train.py --config configs/aae_mnist.py --workdir "runs/aae_anomaly_${d}" \
      --config.aae.normal_class="${d}" --config.train.num_steps=1000 --config.checkpoint.every_steps=500 "$@"
  RUNS+=("runs/aae_anomaly_${d}")
done
python eval.py --compare "$(IFS=,; echo "${RUNS[*]}")" --out runs/aae_anomaly
python - "${RUNS[@]}" <<'PY'
import glob, json, os, sys
rows = []
for workdir in sys.argv[1:]:
  newest = max(glob.glob(os.path.join(workdir, "eval", "*", "metrics.json")), key=lambda p: int(p.split(os.sep)[-2]))
  m = json.load(open(newest))
  rows.append((int(m["anomaly/normal_class"]), m["anomaly/roc_auc_reconstruction"], m["anomaly/roc_auc_combined"]))
lines = ["| normal class | ROC AUC, reconstruction | ROC AUC, combined |", "|---|---|---|"]
lines += [f"| {c} | {r:.4f} | {b:.4f} |" for c, r, b in rows]
lines.append(f"| mean | {sum(r for _, r, _ in rows) / len(rows):.4f} | {sum(b for _, _, b in rows) / len(rows):.4f} |")
open("runs/aae_anomaly/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
