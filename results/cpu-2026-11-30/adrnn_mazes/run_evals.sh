#!/usr/bin/env bash
# Evaluation of the maze solver with learned halting (issue 12), two lanes on the 2-core machine.
#   results/cpu-2026-11-30/adrnn_mazes/run_evals.sh MODEL OUT [N]
# MODEL: a run folder with a fitted halting head (or a bundled name); OUT: results folder.
set -u
MODEL=$1; OUT=$2; N=${3:-60}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
cmp() {  # family
  convrnn eval "$MODEL" --task mazes --family "$1" --sizes 9,13,19,33 --n "$N" --compare learned,stable \
    --batch-size "$N" --no-progress --out "$OUT/compare_$1" > "$OUT/compare_$1.log" 2>&1
  echo "$1: exit $?" >> "$OUT/status.txt"
}
( cmp dfs; cmp dfs_any ) &
( cmp wilson; cmp cycles ) &
wait
# 59x59 easy-to-hard mazes: learned halting alone (a shrinking batch), the default cap (2 x 900 cells)
convrnn eval "$MODEL" --task mazes --family dfs --sizes 59 --n 20 --no-curves --batch-size 20 --no-progress \
  --out "$OUT/dfs_59" > "$OUT/dfs_59.log" 2>&1 &
convrnn eval "$MODEL" --task mazes --family dfs --sizes 59 --n 20 --no-curves --batch-size 20 --no-progress \
  --halting stable --out "$OUT/dfs_59_stable" > "$OUT/dfs_59_stable.log" 2>&1 &
wait
echo "59: done" >> "$OUT/status.txt"
