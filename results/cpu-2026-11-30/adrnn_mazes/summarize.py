"""Markdown rows from `convrnn eval --compare learned,stable` outputs: per family and size, learned halting
vs stable vs the best fixed step count, and the Spearman correlations.

    python results/cpu-2026-11-30/adrnn_mazes/summarize.py OUT_DIR [OUT_DIR ...]   # each holds eval.json
"""
import json
import sys
from pathlib import Path

print("| family | size | learned: acc | mean / median steps | fixed steps to match | compute | stable: acc | "
      "mean steps | best fixed: acc @ steps | at cap (learned / stable) |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
rho = []
for d in sys.argv[1:]:
    r = json.loads((Path(d) / "eval.json").read_text())
    fam = r.get("family", "?")
    for size, v in r["levels"].items():
        le, st = v["policies"]["learned"], v["policies"]["stable"]
        comp = f"{100 * le['compute_vs_fixed']:.0f}%" if le["compute_vs_fixed"] else "-"
        print(f"| {fam} | {size}x{size} | {100 * le['accuracy']:.1f}% | {le['mean_steps']:.1f} / {le['median_steps']:.0f} | "
              f"{le['fixed_steps_to_match'] or '-'} | {comp} | {100 * st['accuracy']:.1f}% | {st['mean_steps']:.1f} | "
              f"{100 * v['best_fixed_accuracy']:.1f}% @ {v['best_fixed_steps']} | {le['hit_cap']} / {st['hit_cap']} |")
    if len(r["levels"]) > 1:
        rho.append((fam, Path(d).name, r["spearman_steps_vs_level"], r.get("spearman_steps_vs_sample_difficulty", {})))
print()
print("| family (run) | Spearman steps vs size: learned / stable | vs solution length: learned / stable |")
print("| --- | --- | --- |")
for fam, name, lv, sd in rho:
    print(f"| {fam} ({name}) | {lv['learned']:.2f} / {lv['stable']:.2f} | {sd.get('learned', float('nan')):.2f} / "
          f"{sd.get('stable', float('nan')):.2f} |")
