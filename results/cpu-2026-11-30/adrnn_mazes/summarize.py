"""Markdown tables from run_evals.sh's outputs: per family and size, learned halting vs stable vs the
best fixed step count; Spearman of steps with size and with each maze's solution length.

    python results/cpu-2026-11-30/adrnn_mazes/summarize.py OUT
"""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print("| family | size | learned: acc | mean / median steps | fixed steps to match | compute | stable: acc | "
      "mean steps | best fixed: acc @ steps | at cap (learned / stable) |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
rho = []
for fam in ("dfs", "dfs_any", "wilson", "cycles"):
    f = out / f"compare_{fam}" / "eval.json"
    if not f.is_file():
        continue
    r = json.loads(f.read_text())
    for size, v in r["levels"].items():
        le, st = v["policies"]["learned"], v["policies"]["stable"]
        comp = f"{100 * le['compute_vs_fixed']:.0f}%" if le["compute_vs_fixed"] else "-"
        print(f"| {fam} | {size}x{size} | {100 * le['accuracy']:.1f}% | {le['mean_steps']:.1f} / {le['median_steps']:.0f} | "
              f"{le['fixed_steps_to_match'] or '-'} | {comp} | {100 * st['accuracy']:.1f}% | {st['mean_steps']:.1f} | "
              f"{100 * v['best_fixed_accuracy']:.1f}% @ {v['best_fixed_steps']} | {le['hit_cap']} / {st['hit_cap']} |")
    rho.append((fam, r["spearman_steps_vs_level"], r.get("spearman_steps_vs_sample_difficulty", {})))
print()
print("| family | Spearman steps vs size: learned / stable | vs solution length: learned / stable |")
print("| --- | --- | --- |")
for fam, lv, sd in rho:
    print(f"| {fam} | {lv['learned']:.3f} / {lv['stable']:.3f} | {sd.get('learned', float('nan')):.3f} / "
          f"{sd.get('stable', float('nan')):.3f} |")
for name in ("dfs_59", "dfs_59_stable"):
    f = out / name / "eval.json"
    if f.is_file():
        r = json.loads(f.read_text())
        v = r["levels"]["59"]
        print(f"\n{name}: {r['halting']} {100 * v['accuracy']:.1f}% of {v['n']}, mean {v['mean_steps']:.1f} / median "
              f"{v['median_steps']:.0f} steps, cap {v['max_steps']}, at cap {v['hit_cap']}")
