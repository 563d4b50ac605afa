# Issue 12 evaluations as run on 2026-11-30 (paths: the run folders; the outputs are in this folder)
export OMP_NUM_THREADS=1
MIX=runs/mazes_mix_learned   # mazes_mix_cpu + fit-halting with the same options
PY=python
O=results/cpu-2026-11-30/adrnn_mazes
for f in dfs dfs_any wilson cycles; do
$PY -m convrnn.cli eval $MIX --task mazes --family $f --sizes 19 --n 50 --compare learned,stable --batch-size 50 --no-progress --out $O/mix19_$f > $O/mix19_$f.log 2>&1; echo "mix19_$f $?" >> $O/status.txt
done
