set -x
export PYTHONPATH=/tmp/snapE/src OMP_NUM_THREADS=1
PY=/work/main/.venv/bin/python
R=/tmp/runs/pf_cross
$PY -m convrnn.cli fit-halting $R/train --levels 9,14 --n 128 --max-steps 60 --out $R/learned
$PY -m convrnn.cli eval $R/learned --task pathfinder --lengths 9,14,18,21,24 --n 500 --max-steps 80 --no-progress --out $R/learned/eval_ladder > $R/eval_ladder.log 2>&1
$PY /work/main/results/cpu-2026-11-30/pathfinder_cpu/robust_probe.py $R/learned $R/learned/robust_probe.json > $R/probe.log 2>&1
$PY -m convrnn.cli fit-halting $R/train --levels 9,14,18 --n 128 --max-steps 60 --out $R/learned3
$PY -m convrnn.cli eval $R/learned3 --task pathfinder --lengths 9,14,18,21,24 --n 500 --max-steps 80 --no-progress --out $R/learned3/eval_ladder > $R/eval_ladder3.log 2>&1
