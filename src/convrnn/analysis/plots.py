"""Figures (matplotlib on the Agg backend, PNG): the two helpers every figure writer uses, and the
evaluation plots."""
from __future__ import annotations

import io
from pathlib import Path

from ..fileio import atomic_write


def pyplot(optional: bool = False):
    """``matplotlib.pyplot`` on the non-interactive Agg backend. A missing matplotlib raises an
    ImportError with the pip command, or gives ``None`` with ``optional=True`` (callers skip figures)."""
    try:
        import matplotlib
    except ImportError:
        if optional:
            return None
        raise ImportError("figures need the optional package 'matplotlib': pip install 'convrnn[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int = 130, **savefig_kwargs) -> Path:
    """Lay out ``fig``, write it as a PNG to ``path`` atomically, close it; returns ``path``."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    pyplot().close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), fsync=False)
    return Path(path)


def plot_halting_comparison(result: dict, out_dir: Path) -> Path:
    """Mean steps and accuracy vs difficulty for each halting policy and the best fixed step count (levels
    as :func:`convrnn.evaluate.compare_policies` returns them)."""
    plt = pyplot()
    levels = result["levels"]
    xs = [float(k) for k in levels]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    names = list(next(iter(levels.values()))["policies"])
    series = [(name, [v["policies"][name]["mean_steps"] for v in levels.values()],
               [v["policies"][name]["accuracy"] for v in levels.values()]) for name in names]
    series.append(("best fixed count (oracle)", [v["best_fixed_steps"] for v in levels.values()],
                   [v["best_fixed_accuracy"] for v in levels.values()]))
    for (name, steps, acc), marker in zip(series, "os^Dv<>"):
        a1.plot(xs, steps, marker + "-", label=name)
        a2.plot(xs, [100 * a for a in acc], marker + "-", label=name)
    label = {"mazes": "maze size", "pathfinder": "contour length"}.get(result["task"], "difficulty")
    a1.set(xlabel=label, ylabel="mean steps", title="Steps: halting policies vs best fixed")
    a2.set(xlabel=label, ylabel="accuracy (%)", ylim=(-2, 102), title="Accuracy")
    a1.legend(fontsize=8)
    return save_figure(fig, out_dir / "halting_vs_fixed.png")


def _mean_steps(level: dict) -> float:
    """A level's mean steps; for a comparison (:func:`convrnn.evaluate.compare_policies`) its first policy's."""
    if "mean_steps" in level:
        return level["mean_steps"]
    return next(iter(level["policies"].values()))["mean_steps"]


def plot_eval(result: dict, out_dir: Path) -> list[Path]:
    plt = pyplot()
    levels = result["levels"]
    names = list(levels)
    label = {"mazes": "maze size", "pathfinder": "contour length"}.get(result["task"], "difficulty")
    paths = []
    if all("curve" in levels[k] for k in names):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for k in names:
            c = levels[k]["curve"]
            ax.plot(range(1, len(c) + 1), [100 * v for v in c], label=f"{k}")
            ax.axvline(_mean_steps(levels[k]), color=ax.lines[-1].get_color(), ls=":", lw=1)
        anytime = result.get("curve_kind") == "anytime"
        ax.set_xlabel("iterations" + (" (halted samples keep their answer)" if anytime else " (fixed count)"))
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title("Accuracy vs iterations (dotted: mean steps with halting)")
        ax.legend(title=label, fontsize=8)
        paths.append(save_figure(fig, out_dir / "accuracy_vs_steps.png"))
    if result.get("mode") == "compare":                 # steps vs difficulty per policy: plot_halting_comparison
        return paths
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
    paths.append(save_figure(fig, out_dir / "steps_vs_difficulty.png"))
    return paths
