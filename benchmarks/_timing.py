"""Shared timing for the benchmark scripts: variants interleaved in every repeat, medians in ms."""
import statistics
import time

import torch


def interleaved_medians(fns: dict, reps: int, warmup: int, budget: float, grad: bool = False) -> tuple[dict, int]:
    """Time each callable in ``fns`` under ``torch.no_grad`` (``grad=True``: with autograd, for
    training steps); the order alternates every repeat so that drifts of a shared machine hit all
    variants alike. A callable that takes one argument gets the repeat's index (so every variant
    sees the same sequence of inputs). Stops after ``reps`` repeats or (after at least 5) once
    ``budget`` seconds have passed. Returns (median ms, repeats)."""
    import inspect
    times = {k: [] for k in fns}
    takes_i = {k: len(inspect.signature(f).parameters) == 1 for k, f in fns.items()}
    with torch.set_grad_enabled(grad):
        for w in range(warmup):
            for k, f in fns.items():
                f(w) if takes_i[k] else f()
        t_start = time.perf_counter()
        for i in range(reps):
            order = list(fns) if i % 2 == 0 else list(fns)[::-1]
            for k in order:
                t0 = time.perf_counter()
                fns[k](warmup + i) if takes_i[k] else fns[k]()
                times[k].append((time.perf_counter() - t0) * 1e3)
            if i >= 4 and time.perf_counter() - t_start > budget:
                break
    return {k: statistics.median(v) for k, v in times.items()}, len(next(iter(times.values())))
