export OMP_NUM_THREADS=1
PY=python
$PY -m convrnn.cli fit-halting runs/mazes_trees_cpu --levels 9,13 --n 128 --max-steps 100 --lambda-p 0.2 --objective error --out runs/mazes_trees_learned > fit.log 2>&1
O=results/cpu-2026-11-30/mazes_trees_cpu; mkdir -p $O
c() { $PY -m convrnn.cli eval runs/mazes_trees_learned --task mazes --family $1 --sizes $2 --n 30 --compare learned,stable --batch-size 30 --no-progress --out $O/$1 > $O/$1.log 2>&1; echo "$1 $?" >> $O/status.txt; }
( c dfs 9,13,19,33 ) &
( c wilson 9,13,19; c dfs_any 9,13,19 ) &
wait
