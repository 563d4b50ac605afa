#!/usr/bin/env bash
# Issue 4's GPU run (not yet run: no GPU session has had it): PathFinder at 150 px (classic150),
# trained at contour length 14, evaluated zero-shot at 9..24 with adaptive halting. Two models
# train concurrently on one GPU under a wall-clock budget; everything lands in ONE archive
# $OUT/results.tar.gz (the device tool returns only a few files).
#   OUT=... TRAIN_SECONDS=360 EVAL_SECONDS=120 bash scripts/gpu_pathfinder.sh
# CPU smoke test of the same script: TINY=1 OUT=/tmp/pf-smoke bash scripts/gpu_pathfinder.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg
FINAL=${OUT:?set OUT}
OUT=${WORK:-/tmp/convrnn-gpu-pathfinder}
rm -rf "$OUT" && mkdir -p "$OUT"
T=${TRAIN_SECONDS:-360}
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
if [ "${TINY:-0}" = 1 ]; then
  EXTRA="device=cpu amp=none channels_last=false n_train=64 n_val=32 epochs=1 batch_size=32 data_kwargs.preset=lra32 model_kwargs.width=8 model_kwargs.steps=3 steps=3"
  EVAL="--lengths 9,14 --n 8 --max-steps 6 --device cpu --preset lra32"
else
  EXTRA="device=cuda"
  EVAL="--lengths 9,14,18,21,24 --n 1000 --max-steps 80 --batch-size 250 --amp bf16 --preset classic150"
fi
train() {  # name overrides...
  local name=$1; shift
  $PY -m convrnn.cli train --no-progress pathfinder_gpu out_dir="$OUT/$name" time_limit=$T log_every=100 "$@" $EXTRA \
    > "$OUT/$name.train.log" 2>&1
  echo "$name: train exit $?" | tee -a "$OUT/status.txt"
}
# the adaptive-recurrence recipe: LocRNN, ACT halting (the config as bundled)
train pf150_locrnn_act &
# a recurrent ResNet with a loss at every step, evaluated with the stable-answer halting
train pf150_resnet_allsteps model=adrnn_resnet_pathfinder loss=all_steps lr=0.002 &
wait
ev() {  # name halting
  [ -f "$OUT/$1/model.safetensors" ] || { echo "$1: no model" | tee -a "$OUT/status.txt"; return; }
  timeout "${EVAL_SECONDS:-120}" $PY -m convrnn.cli eval "$OUT/$1" --task pathfinder --halting "$2" \
    --out "$OUT/$1/eval_$2" $EVAL > "$OUT/$1.eval_$2.log" 2>&1
  echo "$1 eval $2: exit $?" | tee -a "$OUT/status.txt"
}
ev pf150_locrnn_act act &
ev pf150_resnet_allsteps stable &
wait
rm -rf "$OUT"/*/checkpoint
mkdir -p "$FINAL" && tar czf "$FINAL/results.tar.gz" -C "$OUT" . && cp "$OUT"/status.txt "$FINAL"/ 2>/dev/null
tail -n 3 "$OUT"/*.log
