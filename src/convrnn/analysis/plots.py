"""Plots for evaluation results (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

from pathlib import Path

from ..errors import pyplot

plt = pyplot()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_eval(result: dict, out_dir: Path) -> list[Path]:
    levels = result["levels"]
    names = list(levels)
    label = "maze size" if result["task"] == "mazes" else "difficulty"
    paths = []
    if all("curve" in levels[k] for k in names):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for k in names:
            c = levels[k]["curve"]
            ax.plot(range(1, len(c) + 1), [100 * v for v in c], label=f"{k}")
            ax.axvline(levels[k]["mean_steps"], color=ax.lines[-1].get_color(), ls=":", lw=1)
        anytime = result.get("curve_kind") == "anytime"
        ax.set_xlabel("iterations" + (" (halted samples keep their answer)" if anytime else " (fixed count)"))
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title("Accuracy vs iterations (dotted: mean steps with halting)")
        ax.legend(title=label, fontsize=8)
        paths.append(_save(fig, out_dir / "accuracy_vs_steps.png"))
    fig, ax1 = plt.subplots(figsize=(5.5, 3.8))
    xs = [float(k) for k in names]
    ax1.plot(xs, [levels[k]["mean_steps"] for k in names], "o-", label="mean steps")
    ax1.plot(xs, [levels[k]["median_steps"] for k in names], "s--", label="median steps")
    ax1.set_xlabel(label)
    ax1.set_ylabel(f"steps used ({result['halting']})")
    ax2 = ax1.twinx()
    ax2.plot(xs, [100 * levels[k]["accuracy"] for k in names], "^-", color="tab:green", label="accuracy")
    ax2.set_ylabel("accuracy (%)", color="tab:green")
    ax2.set_ylim(-2, 102)
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("Steps used and accuracy vs difficulty")
    paths.append(_save(fig, out_dir / "steps_vs_difficulty.png"))
    return paths
