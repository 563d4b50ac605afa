# Issue 12 evaluations as run on 2026-11-30 (paths: the run folders; the outputs are in this folder)
export OMP_NUM_THREADS=1
MIX=runs/mazes_mix_learned   # mazes_mix_cpu + fit-halting with the same options
PY=python
M=runs/adrnn_mazes   # the bundled adrnn_mazes (fit-halting on dtnet_mazes_w64)
O=results/cpu-2026-11-30/adrnn_mazes; mkdir -p $O
c() { $PY -m convrnn.cli eval $1 --task mazes --family $2 --sizes $3 --n 50 --compare learned,stable --batch-size 50 --no-progress --out $O/$4 > $O/$4.log 2>&1; echo "$4 $?" >> $O/status.txt; }
( c $M dfs 9,13,19,33 w64_dfs; $PY -m convrnn.cli eval $M --task mazes --family dfs --sizes 59 --n 20 --no-curves --batch-size 20 --no-progress --out $O/w64_dfs59 > $O/w64_dfs59.log 2>&1; echo "dfs59 $?" >> $O/status.txt ) &
( c $M dfs_any 9,13,19 w64_dfs_any; c $M wilson 9,13,19 w64_wilson; c $M cycles 9,13,19 w64_cycles;
  for f in dfs dfs_any wilson cycles; do c $MIX $f 9,13 mix_$f; done ) &
wait
