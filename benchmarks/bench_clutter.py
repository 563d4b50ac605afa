"""Cluttered-digit generator speed (images/s, one core), against a Pillow renderer of the same images.

Run:  PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_clutter.py [--n 20000] [--n-peer 1000]

* ``generate_clutter`` (a numba kernel, single-threaded) at every difficulty level, 32 px and 64 px:
  best of ``--repeats`` runs of ``--n`` images after a warm-up. The issue's goal: >= 20,000 images/s per
  core at 32 px.
* The peer, measured in the same run: what one would write with Pillow -- every glyph (the same shipped
  atlas, same counts of distractors and fragments per level) rotated, sheared and scaled by
  ``Image.transform(AFFINE, BILINEAR)`` and pasted with itself as the mask, occluder squares drawn with
  ``ImageDraw``, Gaussian noise from numpy. It draws no outlines and does not measure occlusion per
  pixel, so it does less work than the kernel; the ratio is conservative.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

from convrnn.tasks.clutter import LEVELS, generate_clutter, glyph_atlas, level_knobs


def kernel_rate(n: int, size: int, level: int, repeats: int) -> float:
    generate_clutter(8, size, level, seed=123)
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        generate_clutter(n, size, level, seed=r)
        best = min(best, time.perf_counter() - t)
    return n / best


def pillow_rate(n: int, size: int, level: int) -> float:
    from PIL import Image, ImageDraw
    k = level_knobs(level)
    atlas, _, ink = glyph_atlas(24 if k["glyph_size"] * size <= 26 else 48)     # the kernel's choice
    glyphs = [[Image.fromarray((a * 255).astype(np.uint8), "L") for a in v] for v in atlas]
    box = atlas.shape[-1]
    rng = np.random.default_rng(0)
    scale = k["glyph_size"] * size / ink
    t = time.perf_counter()
    for _ in range(n):
        canvas = Image.new("L", (size, size), 0)
        label = int(rng.integers(10))
        for j in range(k["debris"] + k["clutter"] + 1):
            g = glyphs[int(rng.integers(len(glyphs)))][label if j == k["debris"] + k["clutter"] else
                                                         int(rng.integers(10))]
            th = math.radians(20 * k["jitter"] * rng.uniform(-1, 1))
            s = scale * (1 + 0.15 * k["jitter"] * rng.uniform(-1, 1))
            c, si = math.cos(th) / s, math.sin(th) / s
            cx, cy = size / 2 + 0.12 * size * rng.uniform(-1, 1), size / 2 + 0.12 * size * rng.uniform(-1, 1)
            # inverse map canvas -> glyph: u = c (x - cx) + si (y - cy) + box / 2
            warped = g.transform((size, size), Image.Transform.AFFINE,
                                 (c, si, box / 2 - c * cx - si * cy, -si, c, box / 2 + si * cx - c * cy),
                                 resample=Image.Resampling.BILINEAR)
            canvas.paste(warped, (0, 0), warped)
        d = ImageDraw.Draw(canvas)
        side = max(1, round(k["occluder"] * k["glyph_size"] * size))
        for _ in range(int(k["occlusion"] * 10)):
            x, y = rng.integers(size - side, size=2)
            d.rectangle((int(x), int(y), int(x) + side, int(y) + side), fill=128)
        img = np.asarray(canvas, np.float32) / 255
        if k["noise"]:
            img = np.clip(img + k["noise"] * rng.standard_normal(img.shape), 0, 1)
        (img * 255 + 0.5).astype(np.uint8)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-peer", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}\n")
    print("| size | level | numba kernel img/s | Pillow peer img/s | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in (32, 64):
        for level in range(len(LEVELS)):
            n = args.n if size == 32 else args.n // 4
            a = kernel_rate(n, size, level, args.repeats)
            b = pillow_rate(args.n_peer, size, level)
            print(f"| {size} | {level} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
