"""The report of an architecture search (``convrnn search-report``, also written at the end of ``convrnn search``).

From the study in its storage it writes, into one folder:

* ``report.md``: trials by state, the best trials, the Pareto front (Optuna's for a multi-objective
  study; for every study also the front of validation score against parameter count), parameter
  importances (Optuna's fANOVA; a note instead when too few trials finished);
* ``report.json`` and ``trials.csv`` (every trial: number, state, values, parameters, architecture);
* ``best_config.yaml``: the best trial's training config, which ``convrnn train best_config.yaml``
  reruns (same architecture, same seed; ``out_dir`` points to a fresh folder);
* figures (matplotlib): ``history.png`` (score per trial, best so far), ``pareto.png`` (score against
  parameters, the front drawn), ``curves.png`` (validation per epoch, pruned trials dashed) and
  ``importances.png``.

"Best" is the finished trial with the best first objective (of the Pareto front when there are several).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import yaml

from .search import require
from .fileio import atomic_write_text, json_ready

__all__ = ["write_search_report", "pareto_front", "export_best_config"]


def _states():
    from optuna.trial import TrialState
    return TrialState


def pareto_front(points: list, maximize: list) -> list:
    """Indices of the non-dominated ``points`` (tuples); ``maximize[i]`` says which way objective i is better."""
    sign = [1 if m else -1 for m in maximize]
    keys = [tuple(s * v for s, v in zip(sign, p)) for p in points]
    front = []
    for i, a in enumerate(keys):
        if not any(all(x >= y for x, y in zip(b, a)) and b != a for j, b in enumerate(keys) if j != i):
            front.append(i)
    return front


def _fmt(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _arch(t) -> str:
    s = t.user_attrs.get("summary") or {}
    if s.get("family") == "multiarea":
        cells = "/".join(str(c or "ff") for c in s.get("cells", []))
        ch = "/".join(map(str, s.get("channels", [])))
        fb = ", ".join(s.get("feedback", [])) or "no feedback"
        return f"{cells} ch {ch} k {'/'.join(map(str, s.get('kernels', [])))}, {fb}, {s.get('steps')} steps"
    if s:
        return f"{s.get('cell')} width {s.get('width')}, {s.get('steps')} steps"
    return "–"


def _best(study, finished):
    if not finished:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    first = study.directions[0].name.lower() == "maximize"
    return max(front, key=lambda t: t.values[0] if first else -t.values[0])


def export_best_config(trial, path, study_name: str) -> Path:
    """Write ``trial``'s training config as YAML that ``convrnn train`` reruns."""
    cfg = dict(trial.user_attrs["train_config"])
    cfg["out_dir"] = f"runs/{study_name}_trial{trial.number}"
    vals = ", ".join(f"{v:.6g}" for v in (trial.values or []))
    head = (f"# The best architecture of study {study_name!r}: trial {trial.number} ({_arch(trial)}),\n"
            f"# {trial.user_attrs.get('params', 0):,} parameters, objective value(s) {vals}.\n"
            f"# Rerun it with:  convrnn train {Path(path).name}\n")
    atomic_write_text(path, head + yaml.safe_dump(json_ready(cfg), sort_keys=False, width=110))
    return Path(path)


def _importances(study, finished) -> tuple[dict, str | None]:
    optuna = require("optuna", "search")
    if len(finished) < 3:
        return {}, f"parameter importances need at least 3 finished trials, got {len(finished)}"
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as e:
        return {}, f"parameter importances could not be computed: {' '.join(str(e).split())[:200]}"
    if not imp:
        return {}, "parameter importances: no parameter was sampled in every finished trial"
    return {k: float(v) for k, v in imp.items()}, None


def _table(rows: list, header: list) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_search_report(storage: str, study_name: str, out_dir, top: int = 10, log=print) -> dict:
    """Write the report of study ``study_name`` in ``storage`` into ``out_dir``; returns its JSON."""
    optuna = require("optuna", "search")
    from .search import _storage
    TS = _states()
    try:
        study = optuna.load_study(study_name=study_name, storage=_storage(storage))
    except KeyError:
        raise ValueError(f"no study {study_name!r} in {storage}") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    objectives = (study.user_attrs.get("search_config") or {}).get("objectives") or \
        [f"objective {i}" for i in range(len(study.directions))]
    maximize = [d.name.lower() == "maximize" for d in study.directions]
    complete = [t for t in trials if t.state == TS.COMPLETE]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TS}
    notes = {"of the pruned, by the parameter constraint": sum("constraint" in t.user_attrs for t in trials),
             "of the pruned, diverged": sum("diverged" in t.user_attrs for t in trials),
             "of the failed, surplus (trained nothing)": sum(bool(t.user_attrs.get("surplus")) for t in trials),
             "of the failed, left by a killed worker": sum("orphaned" in t.user_attrs for t in trials)}
    best = _best(study, complete)
    ranked = sorted(complete, key=lambda t: t.values[0], reverse=maximize[0])[:top]
    sf = [(t.values[0], t.user_attrs.get("params", 0)) for t in complete]
    acc_front = [complete[i] for i in pareto_front(sf, [maximize[0], False])]
    acc_front.sort(key=lambda t: t.user_attrs.get("params", 0))
    study_front = study.best_trials if len(study.directions) > 1 and complete else []
    imp, imp_note = _importances(study, complete)
    paths = []
    if best is not None:
        paths.append(export_best_config(best, out / "best_config.yaml", study_name))

    def row(t):
        return [str(t.number)] + [_fmt(v) for v in (t.values or [])] + \
            [_fmt(t.user_attrs.get("params")), _fmt(t.user_attrs.get("macs")), _arch(t),
             _fmt(t.params.get("lr"), 5), _fmt(t.user_attrs.get("seconds"), 1)]

    header = ["trial"] + objectives + ["params", "MACs", "architecture", "lr", "seconds"]
    md = [f"# Search {study_name}\n", f"Storage: `{storage}`. Trials: " +
          ", ".join(f"{v} {k}" for k, v in {**counts, **notes}.items() if v) + ".\n"]
    if best is not None:
        md.append(f"Best: trial {best.number}, {_arch(best)}, {best.user_attrs.get('params', 0):,} parameters; "
                  f"its config: `best_config.yaml` (`convrnn train {out / 'best_config.yaml'}`).\n")
    md += ["## Best trials\n", _table([row(t) for t in ranked], header) if ranked else "No finished trial yet.\n"]
    if study_front:
        md += ["## Pareto front (" + " vs ".join(objectives) + ")\n",
               _table([row(t) for t in sorted(study_front, key=lambda t: t.values[0])], header)]
    md += [f"## Pareto front: {objectives[0]} vs parameters\n",
           _table([row(t) for t in acc_front], header) if acc_front else "No finished trial yet.\n"]
    md.append("## Parameter importances (fANOVA, first objective)\n")
    md.append(_table([[k, f"{v:.3f}"] for k, v in imp.items()], ["parameter", "importance"]) if imp
              else f"{imp_note}.\n")
    figs = _plots(trials, complete, acc_front, imp, objectives[0], maximize[0], out)
    md += ["## Figures\n"] + [f"![{p.stem}]({p.name})\n" for p in figs]
    atomic_write_text(out / "report.md", "\n".join(md))
    paths += [out / "report.md", *figs, _write_csv(trials, objectives, out / "trials.csv")]
    result = json_ready({
        "study": study_name, "storage": storage, "objectives": objectives, "counts": {**counts, **notes},
        "best": None if best is None else {"number": best.number, "values": best.values, "params": best.params,
                                           "attrs": {k: v for k, v in best.user_attrs.items()}},
        "top": [{"number": t.number, "values": t.values, "params": t.params,
                 "n_params": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs"), "arch": _arch(t)}
                for t in ranked],
        "pareto_front": [t.number for t in study_front], "score_vs_params_front": [t.number for t in acc_front],
        "importances": imp, "importances_note": imp_note})
    atomic_write_text(out / "report.json", json.dumps(result, indent=1))
    paths.append(out / "report.json")
    log("wrote " + ", ".join(str(p) for p in paths))
    return result


def _write_csv(trials, objectives, path) -> Path:
    names = sorted({k for t in trials for k in t.params})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", *objectives, "n_params", "macs", "seconds", "architecture", "note", *names])
    for t in trials:
        vals = list(t.values or [None] * len(objectives))
        a = t.user_attrs
        note = a.get("constraint") or a.get("diverged") or a.get("error") or a.get("orphaned") or \
            ("surplus" if a.get("surplus") else (f"pruned at epoch {a['pruned_at_epoch']}"
                                                  if "pruned_at_epoch" in a else ""))
        w.writerow([t.number, t.state.name, *vals, a.get("params"), a.get("macs"), a.get("seconds"), _arch(t), note,
                    *[t.params.get(k) for k in names]])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def _plots(trials, complete, front, imp, objective, maximize, out: Path) -> list:
    from .analysis.plots import pyplot, save_figure
    plt = pyplot(optional=True)
    if plt is None or not complete:
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [t.number for t in complete]
    ys = [t.values[0] for t in complete]
    ax.scatter(xs, ys, s=14, label="finished trials")
    best, run = [], None
    for y in ys:
        run = y if run is None else (max(run, y) if maximize else min(run, y))
        best.append(run)
    ax.step(xs, best, where="post", color="C3", label="best so far")
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.intermediate_values]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   s=14, marker="x", color="0.5", label="pruned (last validation)")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "history.png"))
    with_p = [t for t in complete if t.user_attrs.get("params")]
    if with_p:
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ax.scatter([t.user_attrs["params"] for t in with_p], [t.values[0] for t in with_p], s=16, alpha=0.7,
                   label="trials")
        f = sorted(front, key=lambda t: t.user_attrs.get("params", 0))
        ax.plot([t.user_attrs["params"] for t in f], [t.values[0] for t in f], "o-", color="C3", label="Pareto front")
        for t in f:
            ax.annotate(str(t.number), (t.user_attrs["params"], t.values[0]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(objective)
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out / "pareto.png"))
    curves = [t for t in trials if t.intermediate_values]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for t in curves:
            e = sorted(t.intermediate_values)
            ax.plot(e, [t.intermediate_values[k] for k in e], "--" if t.state.name == "PRUNED" else "-",
                    color="0.6" if t.state.name == "PRUNED" else "C0", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {objective}")
        ax.set_title("learning curves (dashed: pruned)", fontsize=9)
        paths.append(save_figure(fig, out / "curves.png"))
    if imp:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(imp) + 1))
        names = list(imp)[::-1]
        ax.barh(names, [imp[k] for k in names])
        ax.set_xlabel("importance (fANOVA)")
        paths.append(save_figure(fig, out / "importances.png"))
    return paths
