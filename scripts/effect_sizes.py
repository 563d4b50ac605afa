"""Effect sizes between conditions of a ``convrnn experiment`` result: difference of means with a Welch 95%
interval, Cohen's d (pooled sd) and, for a 2x2, the interaction (difference of differences).

    python scripts/effect_sizes.py results/.../experiment.json fb-ff "fb+dropout-ff+dropout" gru-feedforward
    python scripts/effect_sizes.py results/.../experiment.json --interaction fb,ff,fb+dropout,ff+dropout

Each contrast ``A-B`` is printed per metric (and per difficulty level when the analysis has levels) as a
markdown row: mean(A) - mean(B) [95% CI], d; an interval that excludes 0 is marked with *.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
from scipy import stats


def welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff), float("inf") if diff else 0.0
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * se
    sp = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return diff, (diff - half, diff + half), diff / sp if sp else float("inf")


def interaction(a1, b1, a2, b2):
    """(mean a1 - mean b1) - (mean a2 - mean b2) with a normal-approximation 95% interval (t with Welch df
    would need four variances; the groups are independent, so the variance is the sum)."""
    groups = [np.asarray(g, float) for g in (a1, b1, a2, b2)]
    diff = groups[0].mean() - groups[1].mean() - groups[2].mean() + groups[3].mean()
    se = math.sqrt(sum(g.var(ddof=1) / len(g) for g in groups))
    df = min(len(g) for g in groups) * 4 - 4
    half = stats.t.ppf(0.975, df) * se
    return diff, (diff - half, diff + half)


def per_seed(res, cond, metric):
    runs = res["runs"][cond]
    return [runs[s]["metrics"][metric] for s in sorted(runs, key=int)]


def per_seed_level(res, cond, i):
    runs = res["runs"][cond]
    return [runs[s]["curves"]["levels"][i] for s in sorted(runs, key=int)]


def fmt(diff, ci, d=None):
    star = "*" if ci[0] > 0 or ci[1] < 0 else ""
    s = f"{diff:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]{star}"
    return s + (f", d={d:+.2f}" if d is not None and math.isfinite(d) else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("contrasts", nargs="*", help="A-B pairs of condition names")
    ap.add_argument("--interaction", default=None, help="A1,B1,A2,B2: (A1-B1) - (A2-B2)")
    a = ap.parse_args()
    res = json.load(open(a.experiment))
    metrics = [m for m in res["metrics"] if all(v is not None for c in res["runs"] for v in per_seed(res, c, m))]
    levels = res["analysis"].get("levels") or []
    cols = metrics + [f"level {v:g}" for v in levels]
    print("| contrast | " + " | ".join(cols) + " |")
    print("| --- | " + " | ".join("---:" for _ in cols) + " |")
    conds = list(res["runs"])
    for c in a.contrasts:
        A, B = next((x, c[len(x) + 1:]) for x in sorted(conds, key=len, reverse=True)
                    if c.startswith(x + "-") and c[len(x) + 1:] in conds)
        cells = [fmt(*welch(per_seed(res, A, m), per_seed(res, B, m))) for m in metrics]
        cells += [fmt(*welch(per_seed_level(res, A, i), per_seed_level(res, B, i))) for i in range(len(levels))]
        print(f"| {A} − {B} | " + " | ".join(cells) + " |")
    if a.interaction:
        A1, B1, A2, B2 = a.interaction.split(",")
        cells = [fmt(*interaction(*(per_seed(res, x, m) for x in (A1, B1, A2, B2)))) for m in metrics]
        cells += [fmt(*interaction(*(per_seed_level(res, x, i) for x in (A1, B1, A2, B2))))
                  for i in range(len(levels))]
        print(f"| ({A1} − {B1}) − ({A2} − {B2}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
