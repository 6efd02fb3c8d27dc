#!/usr/bin/env bash
# Reproduce the bundled default model rankiqa/assets/default.pt (see rankiqa/assets/MODEL_CARD.md).
#
#   bash benchmarks/train_default.sh            # from the repository root; ~20 min on 2 CPU cores
#
# Data: ../shared/data/pristine/train only (280 photos: CBSD68, McMaster, Sun-Hays 80, Urban100,
# Set5/Set14, scikit-image samples), distorted on the fly with every registered type at 5 levels.
# Validation: Kodak24 (../shared/data/pristine/val), ranked sets only, never used for training.
# No Kodak, LIVE, TID2013 or CSIQ reference photo is trained on.
# Recipe: ImageNet-initialised efficientnet_lite0, batch-ranking (efficient Siamese all-pairs) loss.
# Knobs (environment): STEPS, PATCH, BATCH_SETS, THREADS, WORKERS, RUN (run folder), WEIGHTS (where
# the stripped model goes), CHECK=0 to skip benchmarks/check_default_model.py (~20 min) at the end.
# Knobs also: LR (default 3e-4), VAL_SETS (default 420).
# Sizing: on an otherwise idle 2-core VM, patch 160 with --threads 2 --workers 1 trains at about
# 3.3 sets/s, so 1000 steps x 4 sets take about 20 min plus 4 validations of 280 Kodak sets.
# The progress bar shows sets/s: lower STEPS if your machine is slower.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${STEPS:-1000}"
PATCH="${PATCH:-160}"
BATCH_SETS="${BATCH_SETS:-4}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-1}"
RUN="${RUN:-runs/default}"
WEIGHTS="${WEIGHTS:-rankiqa/assets/default.pt}"
RANKIQA="${RANKIQA:-.venv/bin/rankiqa}"

"$RANKIQA" train \
  --pristine ../shared/data/pristine/train \
  --val-pristine ../shared/data/pristine/val \
  --backbone efficientnet_lite0 --pretrained \
  --loss batch-ranking --distortions all \
  --steps "$STEPS" --batch-sets "$BATCH_SETS" --patch "$PATCH" \
  --lr "${LR:-3e-4}" --schedule cosine \
  --max-side 512 \
  --val-every 250 --val-sets "${VAL_SETS:-420}" \
  --threads "$THREADS" --workers "$WORKERS" --seed 0 \
  --out "$RUN"

# Strip best.pt to model config + float16 weights (loads with weights_only=True, ~7 MB).
"$RANKIQA" export --weights "$RUN/best.pt" --format weights --out "$WEIGHTS"
ls -l "$WEIGHTS"
sha256sum "$WEIGHTS"
if [ "${CHECK:-1}" != 0 ]; then
  "${PYTHON:-.venv/bin/python}" benchmarks/check_default_model.py --weights "$WEIGHTS"
fi
