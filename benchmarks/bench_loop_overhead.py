"""Benchmark (c): overhead of our iteration loop (``RecurrentModel`` + ``run_recurrence`` with
``halting="fixed"``) over the same convolutions written out as a plain for-loop.

``ours`` is ``convrnn.create_model("convrnn_dense", width=W, cell=CELL)(img, steps=N, halting="fixed")``.
``plain`` calls the *same* modules (same weights) directly: ``encoder`` once, then N applications of
the cell's own convolutions and point-wise maths written out (no input checks, no halting policy,
no batch bookkeeping), then ``readout`` once. Outputs are checked to agree. Variants, taking turns
inside every repeat (median of repeats), forward only under ``torch.no_grad``:

* ``ours``            the model as shipped
* ``ours_nocheck``    with ``convrnn.errors.set_finite_checks(False)`` (no NaN/inf scans)
* ``ours_noshrink``   ``shrink=False`` (halted samples are not removed from the batch)
* ``plain``           the written-out loop

The ratio ours / plain is the loop overhead; the goal in issue 2 is <= 1.10.
``--layout cl`` runs everything channels_last. ``--profile`` prints a cProfile of ``ours`` (own
time, functions under ``convrnn``) for the first configuration.

    PYTHONPATH=src python benchmarks/bench_loop_overhead.py
    PYTHONPATH=src python benchmarks/bench_loop_overhead.py --cells residual --widths 16 --profile
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import torch

import convrnn
from _timing import interleaved_medians
from convrnn.errors import set_finite_checks


def plain_residual(model, img, steps):
    cell = model.cell
    e = model.encoder(img)
    s = torch.zeros_like(e)
    for _ in range(steps):
        z = cell.project(torch.cat([s, e], 1))
        for blk in cell.blocks:
            z = torch.relu(z + blk.conv2(torch.relu(blk.conv1(z))))
        s = z
    return model.readout(s)


def plain_convgru(model, img, steps):
    cell = model.cell
    x = model.encoder(img)
    h = torch.zeros_like(x)
    for _ in range(steps):
        r, u = torch.sigmoid(cell.gates(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(cell.candidate(torch.cat([x, r * h], 1)))
        h = u * h + (1 - u) * c
    return model.readout(h)


PLAIN = {"residual": plain_residual, "convgru": plain_convgru}


def make_fns(model, img, steps):
    plain = PLAIN[model.config.cell]

    def ours():
        return model(img, steps=steps, halting="fixed").output

    def ours_nocheck():
        set_finite_checks(False)
        try:
            return model(img, steps=steps, halting="fixed").output
        finally:
            set_finite_checks(True)

    def ours_noshrink():
        return model(img, steps=steps, halting="fixed", shrink=False).output

    return {"ours": ours, "ours_nocheck": ours_nocheck, "ours_noshrink": ours_noshrink,
            "plain": lambda: plain(model, img, steps)}


def profile(fn, n=3, top=25):
    pr = cProfile.Profile()
    with torch.no_grad():
        pr.enable()
        for _ in range(n):
            fn()
        pr.disable()
    buf = io.StringIO()
    st = pstats.Stats(pr, stream=buf).sort_stats("tottime")
    st.print_stats(top)
    print(buf.getvalue())


def bookkeeping_per_step(batch, width, size, steps=200, shrink=True, reps=5):
    """Microseconds per step that ``run_recurrence`` itself spends with a no-op cell (``h = x``) and
    no readout work until the end: the loop's fixed cost, independent of the convolutions."""
    from convrnn.halting import run_recurrence
    x = torch.randn(batch, width, size, size)
    step = lambda x_, s_, n: (x_, x_)          # noqa: E731
    readout = lambda h: h[:, :1]                 # noqa: E731
    out = []
    with torch.no_grad():
        run_recurrence(step, readout, None, x, steps, "fixed", shrink=shrink)
        for _ in range(reps):
            t0 = time.perf_counter()
            run_recurrence(step, readout, None, x, steps, "fixed", shrink=shrink)
            out.append((time.perf_counter() - t0) / steps * 1e6)
    return statistics.median(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="*", default=["residual", "convgru"], choices=sorted(PLAIN))
    p.add_argument("--widths", nargs="*", type=int, default=[16, 32])
    p.add_argument("--sizes", nargs="*", type=int, default=[24])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--layout", choices=["default", "cl"], default="default")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget", type=float, default=6.0, help="seconds per configuration after warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--profile", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, steps {a.steps}, "
          f"layout {a.layout}, float32, forward no_grad, ms per forward (median)")
    profiled = False
    for w in a.widths:
        for s in a.sizes:
            print(f"# run_recurrence bookkeeping with a no-op cell, width {w}, size {s}: "
                  f"{bookkeeping_per_step(a.batch, w, s):.0f} us/step (shrink=True), "
                  f"{bookkeeping_per_step(a.batch, w, s, shrink=False):.0f} us/step (shrink=False)")
    print("| cell | width | size | ours | ours no finite-check | ours shrink=False | plain | ours/plain "
          "| nocheck/plain | noshrink/plain | reps | max|Δy| |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in a.cells:
        for w in a.widths:
            for s in a.sizes:
                model = convrnn.create_model("convrnn_dense", width=w, cell=cell).eval()
                img = torch.randn(a.batch, 3, s, s)
                if a.layout == "cl":
                    model = model.to(memory_format=torch.channels_last)
                    img = img.contiguous(memory_format=torch.channels_last)
                fns = make_fns(model, img, a.steps)
                with torch.no_grad():
                    err = (fns["ours"]() - fns["plain"]()).abs().max().item()
                m, n = interleaved_medians(fns, a.reps, a.warmup, a.budget)
                pl = m["plain"]
                print(f"| {cell} | {w} | {s} | {m['ours']:.1f} | {m['ours_nocheck']:.1f} | {m['ours_noshrink']:.1f} | "
                      f"{pl:.1f} | {m['ours'] / pl:.3f} | {m['ours_nocheck'] / pl:.3f} | {m['ours_noshrink'] / pl:.3f} | "
                      f"{n} | {err:.1e} |", flush=True)
                if a.profile and not profiled:
                    profiled = True
                    print(f"\n## cProfile of ours ({cell}, width {w}, size {s}), 3 forwards, by own time")
                    profile(fns["ours"])


if __name__ == "__main__":
    main()
