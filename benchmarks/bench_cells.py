"""Benchmark (a): time per recurrent step of every cell, default layout vs channels_last.

For each cell in ``convrnn.list_cells()``, each width (in = hidden channels) and each spatial size,
one step ``out, state = cell(x, state)`` is timed with the state carried from step to step (the
zero-state path of the first call is excluded). Timings are the median over several repeats after
warm-up, in milliseconds per step. ``channels_last`` means the cell is moved with
``cell.to(memory_format=torch.channels_last)`` and the input is made channels_last (the zero state
follows the input's layout). The ratio column is default / channels_last (> 1: channels_last is
faster). The ``CL kept`` column says whether the output and state stay channels_last.

This is a script, not a test:

    PYTHONPATH=src python benchmarks/bench_cells.py                     # forward only, no_grad, 1 thread
    PYTHONPATH=src python benchmarks/bench_cells.py --backward          # forward + backward
    PYTHONPATH=src python benchmarks/bench_cells.py --cells convlstm residual --widths 32 --sizes 24
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

import convrnn
from convrnn.cells.base import map_state


def _is_cl(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


class _Runner:
    """Runs ``k`` consecutive steps of ``cell`` on ``x``, carrying the state between calls."""

    def __init__(self, cell, x, backward: bool):
        self.cell, self.x, self.backward = cell, x, backward
        with torch.no_grad():
            self.out, self.state = cell(x, None)      # zero-state step, never timed

    def __call__(self, k: int) -> None:
        cell, x, state = self.cell, self.x, self.state
        if self.backward:
            loss = 0.0
            for _ in range(k):
                out, state = cell(x, state)
                loss = loss + out.float().mean()
            loss.backward()
            state = map_state(state, torch.Tensor.detach)
        else:
            with torch.no_grad():
                for _ in range(k):
                    out, state = cell(x, state)
        self.out, self.state = out, state

    def channels_last_kept(self) -> bool:
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return _is_cl(self.out) and all(_is_cl(s) for s in parts if s.dim() == 4)


def time_alternating(runners: dict, steps_per_rep: int, reps: int, warmup: int, budget_s: float) -> dict:
    """Median ms per step for each runner; the runners take turns within each repeat so that load
    from other processes hits them alike. At least 3 repeats, then stop once ``budget_s`` is spent."""
    for _ in range(warmup):
        for r in runners.values():
            r(steps_per_rep)
    times = {k: [] for k in runners}
    t_start = time.perf_counter()
    for i in range(reps):
        order = list(runners) if i % 2 == 0 else list(runners)[::-1]
        for k in order:
            t0 = time.perf_counter()
            runners[k](steps_per_rep)
            times[k].append((time.perf_counter() - t0) / steps_per_rep * 1e3)
        if i >= 2 and time.perf_counter() - t_start > budget_s:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="*", default=None, help="default: all of convrnn.list_cells()")
    p.add_argument("--widths", nargs="*", type=int, default=[16, 32, 64])
    p.add_argument("--sizes", nargs="*", type=int, default=[24, 48])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--backward", action="store_true", help="time forward + backward instead of no_grad forward")
    p.add_argument("--steps-per-rep", type=int, default=3)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget", type=float, default=0.6, help="seconds per config (both layouts) after warm-up")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared 2-core box, 2 threads fight other jobs and "
                        "time out at OS scheduler quanta; 0 = torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cells = a.cells or convrnn.list_cells()
    mode = "fwd+bwd" if a.backward else "fwd (no_grad)"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"batch {a.batch}, float32, {mode}, ms per step (median)")
    print("| cell | width | size | default ms | channels_last ms | default/CL | CL kept |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for name in cells:
        for w in a.widths:
            for s in a.sizes:
                cell = convrnn.create_cell(name, w, w)
                x = torch.randn(a.batch, w, s, s)
                cell_cl = copy.deepcopy(cell).to(memory_format=torch.channels_last)
                runners = {"default": _Runner(cell, x, a.backward),
                           "cl": _Runner(cell_cl, x.contiguous(memory_format=torch.channels_last), a.backward)}
                ms = time_alternating(runners, a.steps_per_rep, a.reps, a.warmup, a.budget)
                kept = runners["cl"].channels_last_kept()
                d, c = ms["default"], ms["cl"]
                print(f"| {name} | {w} | {s} | {d:.2f} | {c:.2f} | {d / c:.2f} | {'yes' if kept else 'NO'} |",
                      flush=True)


if __name__ == "__main__":
    main()
