"""PathFinder generator speed (images/s, one core) and the marker-distance shortcut check.

Run:  PYTHONPATH=src python benchmarks/bench_pathfinder.py [--n 1000] [--n-shortcut 2000]

* Speed: ``generate_pathfinder`` timed after a numba warm-up, best of ``--repeats`` runs of
  ``--n`` images (numba kernels are single-threaded: one core).  Per preset at length 14, and
  for ``classic150`` (the original defaults: 300 px drawn, 150 px delivered) at lengths 6, 9, 14,
  18, 24, with the ratio against the original generator's published per-image times
  (``/work/shared/reference/numbers.md``: 110-210 ms for lengths 6-14 at 300 px, 370 ms at 18,
  1,160 ms at 24, 3,900 ms at the LRA 128 px settings; one CPU core).  For lengths 6 and 9 the
  ratio uses the low end of the published range (110 ms), i.e. it is conservative.
* Shortcut: a classifier that sees only the distance between the two markers (best threshold
  stump or a 10-bin histogram classifier, fit on one half, scored on the other) on
  ``--n-shortcut`` images per setting; chance is 50%, the original generator gives 88% / 81% /
  64% at lengths 6 / 9 / 14.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from convrnn.tasks.pathfinder import PRESETS, distance_only_accuracy, generate_pathfinder

# original generator, ms per image on one core (numbers.md); None = not published
ORIGINAL_MS = {
    ("classic150", 6): 110.0,   # low end of "110-210 ms for lengths 6-14"
    ("classic150", 9): 110.0,
    ("classic150", 14): 210.0,  # the issue quotes ~200 ms at length 14
    ("classic150", 18): 370.0,
    ("classic150", 24): 1160.0,
    ("lra128", 14): 3900.0,
}


def ms_per_image(n: int, length: int, preset: str, repeats: int) -> float:
    generate_pathfinder(4, length, preset, seed=123)  # warm-up (numba compile or cache load)
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        generate_pathfinder(n, length, preset, seed=r)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="images per speed timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-shortcut", type=int, default=2000, help="images per shortcut check")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    t = time.perf_counter()
    generate_pathfinder(2, 6, "lra32")
    print(f"first call (numba cache load or compile): {time.perf_counter() - t:.2f} s\n")

    print("| preset | length | ms / image | images / s | original ms | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [(p, 14) for p in PRESETS if p != "classic150"] + [("classic150", L) for L in (6, 9, 14, 18, 24)]
    for preset, length in rows:
        n = args.n if preset != "lra64" else max(50, args.n // 5)
        ms = ms_per_image(n, length, preset, args.repeats)
        orig = ORIGINAL_MS.get((preset, length))
        ratio = f"{orig / ms:,.0f}x" if orig else "-"
        print(f"| {preset} | {length} | {ms:.3f} | {1e3 / ms:,.0f} | {orig or '-'} | {ratio} |", flush=True)

    print(f"\ndistance-only classifier, {args.n_shortcut} images each (seed 2026):")
    print("| preset | length | stump | histogram | best | mean distance pos / neg (px) |")
    print("| --- | --- | --- | --- | --- | --- |")
    checks = ([("classic150", L) for L in (6, 9, 14, 18, 24)] + [("lra32", L) for L in (6, 9, 14)]
              + [(p, 14) for p in ("lra64", "lra128", "lra256")])
    for preset, length in checks:
        d = generate_pathfinder(args.n_shortcut, length, preset, seed=2026)
        a = distance_only_accuracy(d["markers"], d["labels"])
        m = d["markers"].astype(float)
        dist = np.hypot(m[:, 0, 0] - m[:, 1, 0], m[:, 0, 1] - m[:, 1, 1])
        y = d["labels"]
        print(f"| {preset} | {length} | {a['stump']:.1%} | {a['histogram']:.1%} | {a['best']:.1%} | "
              f"{dist[y == 1].mean():.1f} / {dist[y == 0].mean():.1f} |", flush=True)


if __name__ == "__main__":
    main()
