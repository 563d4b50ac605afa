"""Shared timing for the benchmark scripts: variants interleaved in every repeat, medians in ms."""
import statistics
import time

import torch


def interleaved_medians(fns: dict, reps: int, warmup: int, budget: float) -> tuple[dict, int]:
    """Time each zero-argument callable in ``fns`` under ``torch.no_grad``; the order alternates
    every repeat so that drifts of a shared machine hit all variants alike. Stops after ``reps``
    repeats or (after at least 5) once ``budget`` seconds have passed. Returns (median ms, repeats)."""
    times = {k: [] for k in fns}
    with torch.no_grad():
        for _ in range(warmup):
            for f in fns.values():
                f()
        t_start = time.perf_counter()
        for i in range(reps):
            order = list(fns) if i % 2 == 0 else list(fns)[::-1]
            for k in order:
                t0 = time.perf_counter()
                fns[k]()
                times[k].append((time.perf_counter() - t0) * 1e3)
            if i >= 4 and time.perf_counter() - t_start > budget:
                break
    return {k: statistics.median(v) for k, v in times.items()}, len(next(iter(times.values())))
