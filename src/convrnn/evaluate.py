"""Evaluation over difficulty levels: accuracy with adaptive halting, steps used, and
accuracy-vs-step curves, written as JSON (schema ``convrnn.eval/1``) plus PNG plots.

``task`` is a :class:`~convrnn.tasks.base.Task`: ``correct``, ``eval_data``, ``step_cap``,
``sample_difficulty`` (+ ``sample_difficulty_name``), ``level_info`` and ``plot_examples`` are its hooks."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .fileio import atomic_write_text
from .halting import get_policy
from .runtime import autocast, is_channels_last, resolve_amp

SCHEMA = "convrnn.eval/1"


def resolve_policy(model, halting):
    """``halting`` as a policy object, through the model when it has its own (``"learned"``)."""
    return model.halting_policy(halting) if hasattr(model, "halting_policy") else get_policy(halting)


@torch.no_grad()
def evaluate_level(model, task, x, y, max_steps: int, halting="act", batch_size: int = 32, device="cpu",
                   curve: bool | str = True, amp: str = "none", step_callback=None,
                   curve_steps: int | None = None) -> dict:
    """One difficulty level: halted accuracy, steps per sample, ms per sample, and a curve of accuracy
    after every step 1..max_steps.

    ``curve=True`` (or "fixed") runs a second, fixed-step pass: the accuracy if every sample stopped
    after exactly n steps, for n up to ``curve_steps`` (default ``max_steps``; a large cap on big mazes
    makes that pass the dominant cost). ``curve="anytime"`` reads the halting run itself: the accuracy of the
    current answers after step n, halted samples keeping theirs (no second pass; its bookkeeping is
    inside the timed run). ``step_callback()`` is called once per step (progress bars).
    """
    model.eval()
    dev_type = torch.device(device).type
    amp = resolve_amp(amp, device)
    channels_last = is_channels_last(model)
    policy = resolve_policy(model, halting)
    anytime = curve == "anytime"
    correct, steps, elapsed = [], [], 0.0
    horizon = max_steps if anytime or not curve_steps else min(int(curve_steps), max_steps)
    curve_hits = np.zeros(horizon)
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        if dev_type == "cuda":
            torch.cuda.synchronize()
        right = torch.zeros(len(xb), dtype=torch.bool, device=xb.device)
        hits = np.zeros(max_steps)

        def on_step(n, idx, yn):
            if anytime:
                right[idx] = task.correct(yn, yb[idx], xb[idx])
                hits[n - 1] = int(right.sum())
            if step_callback is not None:
                step_callback()
        t = time.perf_counter()
        with autocast(amp, device):
            out = model(xb, steps=max_steps, halting=policy,
                        on_step=on_step if anytime or step_callback is not None else None)
        if dev_type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t
        correct.append(task.correct(out.output, yb, xb).cpu())
        steps.append(out.steps.cpu())
        if anytime:
            last = int(out.steps.max())
            hits[last:] = hits[last - 1]          # everyone has halted: answers no longer change
            curve_hits += hits
        elif curve:
            def on_fixed_step(n, idx, yn):
                curve_hits[n - 1] += int(task.correct(yn, yb[idx], xb[idx]).sum())
            with autocast(amp, device):
                model(xb, steps=horizon, halting="fixed", on_step=on_fixed_step)
    correct, steps = torch.cat(correct), torch.cat(steps).float()
    n = len(x)
    res = {"n": n, "accuracy": correct.float().mean().item(), "mean_steps": steps.mean().item(),
           "median_steps": steps.median().item(), "max_steps": int(max_steps),
           "hit_cap": int((steps >= max_steps).sum()), "ms_per_sample": 1000 * elapsed / n,
           "steps_hist": np.bincount(steps.long().numpy(), minlength=max_steps + 1)[1:].tolist()}
    if anytime:
        res["curve"] = (curve_hits / n)[:int(steps.max())].tolist()
    elif curve:
        res["curve"] = (curve_hits / n).tolist()
        res["best_fixed_steps"] = int(np.argmax(curve_hits)) + 1
        res["best_fixed_accuracy"] = float(curve_hits.max() / n)
    res["amp"] = amp
    res["steps_per_sample"] = steps.long().tolist()
    difficulty = task.sample_difficulty(x, y)
    if difficulty is not None:
        res["difficulty_per_sample"] = [float(v) for v in difficulty]
    return res


@torch.no_grad()
def compare_policies(model, task, x, y, max_steps: int, policies, batch_size: int = 32, device="cpu",
                     amp: str = "none", step_callback=None) -> dict:
    """Several halting policies and the fixed step counts on one pass (:class:`~convrnn.halting.Shadow`).

    Returns the fixed-step ``curve`` (accuracy after n steps, n up to the shortest batch's pass),
    ``best_fixed_steps`` / ``best_fixed_accuracy`` (the fewest steps at the top accuracy; an oracle),
    and per policy under ``policies``: accuracy at its own halting step, mean / median steps, ``hit_cap``,
    ``steps_per_sample``, ``fixed_steps_to_match`` (the fewest fixed steps at least as accurate, or None)
    and ``compute_vs_fixed`` (its mean steps over that count: what it costs with a shrinking batch
    against running every sample that long). ``policies``: names (or policy objects) by label.
    """
    from .halting import Shadow
    model.eval()
    amp = resolve_amp(amp, device)
    channels_last = is_channels_last(model)
    names = list(policies)
    n_all = len(x)
    correct = torch.zeros(n_all, max_steps, dtype=torch.bool)
    halted = {k: torch.zeros(n_all, dtype=torch.long) for k in names}
    reach = max_steps
    for i in range(0, n_all, batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        shadow = Shadow({k: resolve_policy(model, policies[k]) for k in names})
        last = [0]

        def on_step(n, idx, yn):
            correct[i + idx.cpu(), n - 1] = task.correct(yn, yb[idx], xb[idx]).cpu()
            last[0] = n
            if step_callback is not None:
                step_callback()
        with autocast(amp, device):
            model(xb, steps=max_steps, halting=shadow, on_step=on_step, shrink=False)
        reach = min(reach, last[0])
        for k in names:
            halted[k][i:i + len(xb)] = shadow.halted[k].cpu()
    curve = correct[:, :reach].float().mean(0)
    best = int(torch.nonzero(curve == curve.max())[0]) if reach else 0
    res = {"n": n_all, "max_steps": int(max_steps), "curve": curve.tolist(), "best_fixed_steps": best + 1,
           "best_fixed_accuracy": float(curve[best]), "amp": amp, "policies": {}}
    rows = torch.arange(n_all)
    for k in names:
        s = halted[k]
        acc = float(correct[rows, s - 1].float().mean())
        match = torch.nonzero(curve >= acc - 1e-9)
        k_match = int(match[0]) + 1 if len(match) else None
        res["policies"][k] = {
            "accuracy": acc, "mean_steps": float(s.float().mean()), "median_steps": float(s.float().median()),
            "hit_cap": int((s >= max_steps).sum()), "steps_per_sample": s.tolist(),
            "fixed_steps_to_match": k_match,
            "compute_vs_fixed": float(s.float().mean()) / k_match if k_match else None}
    difficulty = task.sample_difficulty(x, y)
    if difficulty is not None:
        res["difficulty_per_sample"] = [float(v) for v in difficulty]
    return res


def _level_data(task, levels, n, seed, data, max_steps, desc, progress):
    """``(level, x, y, cap)`` for each level: fresh samples (or the ``data`` file's, one level only) and the
    level's step cap (``max_steps``: one int, or a dict by level)."""
    if data and len(levels) != 1:
        raise ValueError(f"--data holds one difficulty level; give exactly one level with it, got {list(levels)}")
    for level in tqdm(levels, desc=desc, disable=None if progress else True):
        x, y = task.eval_data(level, n, seed, data)
        yield level, x, y, max_steps[level] if isinstance(max_steps, dict) else max_steps


def compare(model, task, levels, n: int, max_steps: int | dict, policies, seed: int = 12345, batch_size: int = 32,
            device="cpu", data: str | None = None, amp: str = "none", progress: bool = True) -> dict:
    """:func:`compare_policies` at every level, plus each policy's Spearman correlation of steps with the
    level and (where the task has one, e.g. a maze's solution length) with each sample's difficulty."""
    results = {}
    for level, x, y, m in _level_data(task, levels, n, seed, data, max_steps, "compare", progress):
        results[str(level)] = compare_policies(model, task, x, y, m, policies, batch_size, device, amp)
    out = {"schema": SCHEMA, "task": task.name, "mode": "compare", "halting": "compare", "policies": list(policies),
           "seed": seed, "amp": resolve_amp(amp, device), "data": data, "levels": results}
    lv = np.concatenate([np.full(r["n"], float(k)) for k, r in results.items()])
    for name in policies:
        steps = np.concatenate([r["policies"][name]["steps_per_sample"] for r in results.values()])
        out.setdefault("spearman_steps_vs_level", {})[name] = spearman(lv, steps) if len(results) > 1 else None
        if all("difficulty_per_sample" in r for r in results.values()):
            diff = np.concatenate([r["difficulty_per_sample"] for r in results.values()])
            out.setdefault("spearman_steps_vs_sample_difficulty", {})[name] = spearman(diff, steps)
            out["sample_difficulty"] = task.sample_difficulty_name
    return out


def default_step_cap(task, level, train_steps: int) -> int:
    """The iteration cap when none is given: the task's rule for the level (:meth:`step_cap`, e.g. growing
    with a maze's cell count), never below 4x the training steps. A cap must not pass for a model's limit,
    so every result also reports how many samples hit it (``hit_cap``)."""
    return max(4 * int(train_steps), int(task.step_cap(level, train_steps)))


def evaluate(model, task, levels, n: int, max_steps: int | dict, halting="act", seed: int = 12345,
             batch_size: int = 32, device="cpu", data: str | None = None, curve: bool = True,
             progress: bool = True, amp: str = "none", curve_steps: int | None = None) -> dict:
    results = {}
    for level, x, y, m in _level_data(task, levels, n, seed, data, max_steps, "eval", progress):
        results[str(level)] = evaluate_level(model, task, x, y, m, halting, batch_size, device, curve, amp,
                                             curve_steps=curve_steps)
        if data is None:                 # e.g. PathFinder: the canvas this level was drawn on
            results[str(level)].update(task.level_info(level))
    halting_name = resolve_policy(model, halting).name
    level_of_sample = np.concatenate([np.full(r["n"], float(k)) for k, r in results.items()])
    steps_of_sample = np.concatenate([np.repeat(np.arange(1, len(r["steps_hist"]) + 1), r["steps_hist"])
                                      for r in results.values()])
    extra = {}
    if len(results) > 1:
        extra["spearman_steps_vs_level"] = spearman(level_of_sample, steps_of_sample)
    if all("difficulty_per_sample" in r for r in results.values()):     # e.g. each maze's solution length
        extra["spearman_steps_vs_sample_difficulty"] = spearman(
            np.concatenate([r["difficulty_per_sample"] for r in results.values()]),
            np.concatenate([r["steps_per_sample"] for r in results.values()]))
        extra["sample_difficulty"] = task.sample_difficulty_name
    return {"schema": SCHEMA, "task": task.name, "halting": halting_name, "seed": seed,
            "max_steps": max_steps, "amp": resolve_amp(amp, device), "data": data, **extra, "levels": results}


def spearman(a, b) -> float:
    """Spearman rank correlation with average ranks for ties (NaN when either side is constant)."""
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for val in np.unique(v):          # average the ranks of ties
            m = v == val
            r[m] = r[m].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def write_report(result: dict, out_dir, model=None, task=None, examples_level=None, device="cpu") -> list[Path]:
    """Write ``eval.json`` and the plots into ``out_dir``; return the written paths."""
    from .analysis import plots
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=1))
    paths = [out_dir / "eval.json"]
    paths += plots.plot_eval(result, out_dir)
    if model is not None and task is not None:
        png = task.plot_examples(model, result, out_dir / "examples.png", level=examples_level, device=device)
        if png is not None:
            paths.append(png)
    return paths
