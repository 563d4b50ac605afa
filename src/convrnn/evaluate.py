"""Evaluation over difficulty levels: accuracy with adaptive halting, steps used, and
accuracy-vs-step curves, written as JSON (schema ``convrnn.eval/1``) plus PNG plots."""
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
                   curve: bool | str = True, amp: str = "none", step_callback=None) -> dict:
    """One difficulty level: halted accuracy, steps per sample, ms per sample, and a curve of accuracy
    after every step 1..max_steps.

    ``curve=True`` (or "fixed") runs a second, fixed-step pass: the accuracy if every sample stopped
    after exactly n steps. ``curve="anytime"`` reads the halting run itself: the accuracy of the
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
    curve_hits = np.zeros(max_steps)
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
                model(xb, steps=max_steps, halting="fixed", on_step=on_fixed_step)
    correct, steps = torch.cat(correct), torch.cat(steps).float()
    n = len(x)
    res = {"n": n, "accuracy": correct.float().mean().item(), "mean_steps": steps.mean().item(),
           "median_steps": steps.median().item(), "ms_per_sample": 1000 * elapsed / n,
           "steps_hist": np.bincount(steps.long().numpy(), minlength=max_steps + 1)[1:].tolist()}
    if anytime:
        res["curve"] = (curve_hits / n)[:int(steps.max())].tolist()
    elif curve:
        res["curve"] = (curve_hits / n).tolist()
        res["best_fixed_steps"] = int(np.argmax(curve_hits)) + 1
        res["best_fixed_accuracy"] = float(curve_hits.max() / n)
    res["amp"] = amp
    return res


def evaluate(model, task, levels, n: int, max_steps: int | dict, halting="act", seed: int = 12345,
             batch_size: int = 32, device="cpu", data: str | None = None, curve: bool = True,
             progress: bool = True, amp: str = "none") -> dict:
    if data and len(levels) != 1:
        raise ValueError(f"--data holds one difficulty level; give exactly one level with it, got {list(levels)}")
    results = {}
    for level in tqdm(levels, desc="eval", disable=None if progress else True):
        x, y = task.eval_data(level, n, seed, data)
        m = max_steps[level] if isinstance(max_steps, dict) else max_steps
        results[str(level)] = evaluate_level(model, task, x, y, m, halting, batch_size, device, curve, amp)
        if data is None and hasattr(task, "canvas"):         # PathFinder: the canvas this level was drawn on
            results[str(level)]["canvas"] = task.canvas(level)
    halting_name = resolve_policy(model, halting).name
    level_of_sample = np.concatenate([np.full(r["n"], float(k)) for k, r in results.items()])
    steps_of_sample = np.concatenate([np.repeat(np.arange(1, len(r["steps_hist"]) + 1), r["steps_hist"])
                                      for r in results.values()])
    extra = {}
    if len(results) > 1:
        extra["spearman_steps_vs_level"] = spearman(level_of_sample, steps_of_sample)
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
    if model is not None and task is not None and hasattr(task, "plot_examples"):
        paths.append(task.plot_examples(model, result, out_dir / "examples.png", level=examples_level, device=device))
    return paths
