#!/usr/bin/env bash
# Reproduce the bundled default model rankiqa/assets/default.pt (see rankiqa/assets/MODEL_CARD.md).
#
#   bash benchmarks/train_default.sh            # from the repository root; ~45 min on 2 CPU cores
#
# Data: ../shared/data/pristine/train (280 photos: CBSD68, McMaster, Sun-Hays 80, Urban100, Set5/Set14,
# scikit-image samples) plus ../shared/data/pristine/train2 (771: 393 BSDS500, 378 ImageNet), joined as
# symlinks in $POOL, distorted on the fly with every single registered type (35) at 5 levels.
# Human targets: --targets kadid (rankiqa/assets/calibration_kadid10k.csv, docs/calibration.md): images of
# different sets are also ranked by KADID-10k's MOS; the calibrated 1-5 output scale is fitted at the end.
# Validation: Kodak24 (../shared/data/pristine/val), never used for training.
# No Kodak, LIVE, TID2013 or CSIQ reference photo is trained on.
# Recipe: ImageNet-initialised efficientnet_lite0, batch-ranking (efficient Siamese all-pairs) loss.
# Knobs (environment): STEPS, PATCH, BATCH_SETS, THREADS, WORKERS, RUN (run folder), WEIGHTS (where
# the stripped model goes), POOL (the joined photo folder), TARGET_LOSS (rank or regression),
# LR (default 3e-4), DISTORTIONS (default all: the 35 single types), VAL_EVERY (default 300),
# VAL_SETS (default 420), CHECK=0 to skip benchmarks/compare_models.py at the end.
# Sizing: see rankiqa/assets/MODEL_CARD.md for the measured sets/s; the progress bar shows sets/s:
# lower STEPS if your machine is slower.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${STEPS:-1200}"
PATCH="${PATCH:-160}"
BATCH_SETS="${BATCH_SETS:-6}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-1}"
RUN="${RUN:-runs/default}"
WEIGHTS="${WEIGHTS:-rankiqa/assets/default.pt}"
RANKIQA="${RANKIQA:-.venv/bin/rankiqa}"
POOL="${POOL:-runs/pool}"
SHARED="${SHARED:-../shared/data/pristine}"

# One folder holding both photo collections (as symlinks; nothing is copied).
for collection in train train2; do
  (cd "$SHARED/$collection" && find . -type f ! -name '*.csv' ! -name '*.md') | while read -r file; do
    mkdir -p "$POOL/$collection/$(dirname "$file")"
    ln -sfn "$(cd "$SHARED/$collection" && pwd)/$file" "$POOL/$collection/$file"
  done
done

"$RANKIQA" train \
  --pristine "$POOL" \
  --val-pristine "$SHARED/val" \
  --targets kadid --target-loss "${TARGET_LOSS:-rank}" --target-margins \
  --backbone efficientnet_lite0 --pretrained \
  --loss batch-ranking --distortions "${DISTORTIONS:-all}" \
  --steps "$STEPS" --batch-sets "$BATCH_SETS" --patch "$PATCH" \
  --lr "${LR:-3e-4}" --schedule cosine \
  --max-side 512 \
  --val-every "${VAL_EVERY:-300}" --val-sets "${VAL_SETS:-420}" \
  --threads "$THREADS" --workers "$WORKERS" --seed 0 \
  --out "$RUN"

# Strip best.pt to model config + float16 weights (loads with weights_only=True, ~7 MB).
"$RANKIQA" export --weights "$RUN/best.pt" --format weights --out "$WEIGHTS"
ls -l "$WEIGHTS"
sha256sum "$WEIGHTS"
if [ "${CHECK:-1}" != 0 ]; then
  "${PYTHON:-.venv/bin/python}" benchmarks/check_default_model.py --weights "$WEIGHTS"
fi
