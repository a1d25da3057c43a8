#!/usr/bin/env bash
# The paper's comparison: VAE, GAN and VAE/GAN trained with the same budget, evaluated side by side.
#
#   scripts/compare_baselines.sh mnist5k 420        # the embedded digits, 28x28 networks
#   VAEGAN_DATA_DIR=../shared/data scripts/compare_baselines.sh celeba64 60
#
# Trains runs/compare_<dataset>/{vae,gan,vaegan} for STEPS steps each (same batch, same seed;
# re-running resumes or skips finished runs), then eval.py --compare prints the table and writes
# runs/compare_<dataset>/comparison.{md,png}. Extra arguments go to every train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:?usage: scripts/compare_baselines.sh mnist5k|celeba64 STEPS [train.py overrides]}
steps=${2:?usage: scripts/compare_baselines.sh mnist5k|celeba64 STEPS [train.py overrides]}
shift 2
root=runs/compare_${dataset}
case "$dataset" in
  mnist5k)
    vaegan=(configs/default.py)
    vae=(configs/default.py --config.method=vae --config.loss.llike=pixel)
    gan=(configs/default.py --config.method=gan) ;;
  celeba64)
    vaegan=(configs/vaegan_celeba.py); vae=(configs/vae_celeba.py); gan=(configs/gan_celeba.py) ;;
  *) echo "unknown dataset $dataset: use mnist5k or celeba64" >&2; exit 2 ;;
esac
every=$(( steps / 3 > 0 ? steps / 3 : 1 ))
for method in vae gan vaegan; do
  declare -n args=$method
  python train.py --config "${args[0]}" "${args[@]:1}" --workdir "$root/$method" \
    --config.train.num_steps="$steps" --config.checkpoint.every_steps="$every" \
    --config.train.image_every="$every" "$@"
done
python eval.py --compare "$root/vae,$root/gan,$root/vaegan" --out "$root"
