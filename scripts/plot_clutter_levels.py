"""The figure of the cluttered-digit levels in the README (docs/clutter_levels.png): 10 images per level.

    PYTHONPATH=src python scripts/plot_clutter_levels.py [--out docs/clutter_levels.png]
"""
from __future__ import annotations

import argparse

import numpy as np

from convrnn.analysis.plots import pyplot, save_figure
from convrnn.tasks.clutter import LEVELS, generate_clutter


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/clutter_levels.png")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args()
    plt = pyplot()
    fig, axes = plt.subplots(len(LEVELS), a.n, figsize=(a.n * 0.75, len(LEVELS) * 0.82))
    for lv, row in enumerate(axes):
        d = generate_clutter(a.n, 32, lv, a.seed)
        for i, ax in enumerate(row):
            ax.imshow(d["images"][i, 0], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(f"{lv}", rotation=0, ha="right", va="center", fontsize=9)
            if lv == 0:
                ax.set_title(str(d["labels"][i]), fontsize=8)
    fig.suptitle("levels 0-6 (rows): clutter, debris, occlusion, noise, jitter grow together; label above",
                 fontsize=8, y=0.995)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    print(save_figure(fig, a.out, dpi=150, bbox_inches="tight"))


if __name__ == "__main__":
    main()
