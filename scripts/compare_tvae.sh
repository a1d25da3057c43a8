#!/usr/bin/env bash
# TVAE vs the plain VAE of the same architecture, trained alike, then compared by eval.py.
#   VAEGAN_DATA_DIR=../shared/data scripts/compare_tvae.sh mnist          # or fashion_mnist
# Leaves runs/tvae_<data>, runs/vae_mlp_<data> and runs/tvae_comparison_<data>/comparison.{md,png}.
set -euo pipefail
DATA="${1:-mnist}"
shift || true
python train.py --config "configs/tvae_${DATA}.py" --workdir "runs/tvae_${DATA}" "$@"
python train.py --config "configs/tvae_${DATA}.py" --workdir "runs/vae_mlp_${DATA}" --config.loss.triplet_weight=0.0 "$@"
python eval.py --compare "runs/vae_mlp_${DATA},runs/tvae_${DATA}" --out "runs/tvae_comparison_${DATA}"
