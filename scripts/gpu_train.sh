#!/usr/bin/env bash
# Train the reference maze models on one GPU, concurrently, each under a wall-clock budget, then
# evaluate them; everything lands in $OUT. Used once on an H200 (see benchmarks/RESULTS.md):
#   OUT=... TRAIN_SECONDS=270 bash scripts/gpu_train.sh
# A CPU smoke test of the same script: TINY=1 OUT=/tmp/gpu-smoke bash scripts/gpu_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg
FINAL=${OUT:?set OUT}
OUT=${WORK:-/tmp/convrnn-gpu-run}   # work here; one archive is copied to $FINAL at the end
rm -rf "$OUT"
T=${TRAIN_SECONDS:-270}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || true
$PY -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)" | tee -a "$OUT/gpu.txt"

if [ "${TINY:-0}" = 1 ]; then
  EXTRA="device=cpu amp=none n_train=96 n_val=32 epochs=1 batch_size=32 steps=4 model_kwargs.width=8"
  EVAL="--sizes 9,13 --n 4 --max-steps 6 --device cpu"
  EVAL_BIG="--sizes 15 --n 2 --max-steps 6 --device cpu"
else
  EXTRA="device=cuda"
  EVAL="--sizes 9,13,19,33,59 --n 200 --max-steps 500 --batch-size 200 --amp bf16"
  EVAL_BIG="--sizes 201 --n 8 --max-steps 2000 --batch-size 8 --no-curves --amp bf16"
fi

train() {  # name config overrides...
  local name=$1 cfg=$2; shift 2
  $PY -m convrnn.cli train --no-progress "$cfg" out_dir="$OUT/$name" time_limit=$T "$@" $EXTRA \
    > "$OUT/$name.train.log" 2>&1
  echo "$name: train exit $?" | tee -a "$OUT/status.txt"
}
# bundled model: width 64 DT-net with recall, progressive loss
train mazes_dtnet_w64 src/convrnn/configs/mazes_dtnet_gpu.yaml model_kwargs.width=64 batch_size=128 \
  n_train=100000 epochs=200 lr=0.002 warmup_epochs=1 path_weight=2.0 alpha=0.1 log_every=100 &
# full-size DeepThinking recipe (width 128), as many epochs as the budget allows
train mazes_dtnet_w128 src/convrnn/configs/mazes_dtnet_gpu.yaml batch_size=128 n_train=100000 epochs=200 \
  lr=0.001 clip=1.0 warmup_epochs=1 log_every=100 &
# AdRNN: ACT halting
train mazes_adrnn_w64 src/convrnn/configs/mazes_act.yaml batch_size=128 n_train=100000 epochs=200 \
  lr=0.002 warmup_epochs=1 log_every=100 &
wait

ev() {  # name label halting args...
  local name=$1 label=$2 halting=$3; shift 3
  [ -f "$OUT/$name/model.safetensors" ] || { echo "$name: no model" | tee -a "$OUT/status.txt"; return; }
  timeout "${EVAL_SECONDS:-180}" $PY -m convrnn.cli eval "$OUT/$name" --halting "$halting" \
    --out "$OUT/$name/eval_$label" "$@" > "$OUT/$name.eval_$label.log" 2>&1
  echo "$name eval $label: exit $?" | tee -a "$OUT/status.txt"
}
ev mazes_dtnet_w64 confidence confidence $EVAL &
ev mazes_dtnet_w128 confidence confidence $EVAL &
ev mazes_adrnn_w64 act act $EVAL &
ev mazes_dtnet_w64 convergence convergence $EVAL --no-curves &
ev mazes_dtnet_w128 201 confidence $EVAL_BIG &
ev mazes_dtnet_w64 201 confidence $EVAL_BIG &
wait
rm -rf "$OUT"/*/checkpoint
mkdir -p "$FINAL" && tar czf "$FINAL/results.tar.gz" -C "$OUT" . && cp "$OUT"/*.log "$OUT"/status.txt "$FINAL"/ 2>/dev/null
tail -n 3 "$OUT"/*.log
