"""Benchmark (b): our ConvLSTM cell vs the ``conv-lstm`` package from PyPI (0.1.2, a fork of
ndrplz/ConvLSTM_pytorch, import name ``conv_lstm``) at equal shapes, in one run.

Both are one layer, kernel 3, with bias, ``in_channels`` -> ``hidden`` channels, run over the same
(B, T, C, H, W) sequence from a zero state, forward only under ``torch.no_grad``. Theirs is
``conv_lstm.ConvLSTM(cin, hid, 3, num_layers=1, batch_first=True)`` fed the 5-D tensor; ours is
``convrnn.create_cell("convlstm", cin, hid)`` looped over ``x[:, t]`` and, like theirs, stacks the
T outputs. Variants take turns inside every repeat (median of repeats):

* ``ours``       default layout
* ``ours_cl``    cell ``.to(memory_format=channels_last)``, each frame made channels_last inside the
                 timed loop (the conversion is charged to us)
* ``theirs``     default layout
* ``theirs_cl``  their module ``.to(memory_format=channels_last)`` (frames left as they come)

The reported ratio is theirs / ours (> 1: ours is faster); the goal in issue 2 is >= 1.5.

Numerical check: their gate split is ``i, f, o, g`` like ours, but we compute ``σ(f + 1)`` for the
forget gate. With our conv weights copied and 1 added to their forget-gate bias slice, the two
compute the same function; the script prints the max abs difference of all outputs and of ``c``.

Needs ``pip install --no-deps conv-lstm==0.1.2`` (its only dependency is torch).

    PYTHONPATH=src python benchmarks/bench_convlstm_peer.py
    PYTHONPATH=src python benchmarks/bench_convlstm_peer.py --shapes 32x32x32 --T 10 --reps 20
"""
from __future__ import annotations

import argparse
import copy

import torch

import convrnn
from _timing import interleaved_medians

try:
    import conv_lstm
except ImportError as e:  # pragma: no cover - a script, not a test
    raise SystemExit("needs the PyPI package conv-lstm==0.1.2: pip install --no-deps conv-lstm==0.1.2") from e


def build_pair(cin: int, hid: int):
    ours = convrnn.create_cell("convlstm", cin, hid, kernel_size=3).eval()
    theirs = conv_lstm.ConvLSTM(cin, hid, 3, num_layers=1, batch_first=True, bias=True).eval()
    tconv = theirs.cell_list[0].conv
    assert tconv.weight.shape == ours.gates.weight.shape, (tconv.weight.shape, ours.gates.weight.shape)
    with torch.no_grad():
        tconv.weight.copy_(ours.gates.weight)
        b = ours.gates.bias.clone()
        b[hid:2 * hid] += 1.0           # our σ(f + 1) == their σ(f') with f' bias = f bias + 1
        tconv.bias.copy_(b)
    return ours, theirs


def run_ours(cell, x5, channels_last: bool):
    state, outs = None, []
    for t in range(x5.shape[1]):
        x = x5[:, t]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h, state = cell(x, state)
        outs.append(h)
    return torch.stack(outs, 1), state


def run_theirs(model, x5):
    layer_outputs, last_states = model(x5)
    h, c = last_states[0]
    return layer_outputs[0], (h, c)


def check_same(ours, theirs, x5) -> tuple[float, float]:
    with torch.no_grad():
        yo, (_, co) = run_ours(ours, x5, False)
        yt, (_, ct) = run_theirs(theirs, x5)
    return (yo - yt).abs().max().item(), (co - ct).abs().max().item()


def bench(cin, hid, size, T, batch, reps, warmup, budget):
    ours, theirs = build_pair(cin, hid)
    x5 = torch.randn(batch, T, cin, size, size)
    err_y, err_c = check_same(ours, theirs, x5)
    ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    theirs_cl = copy.deepcopy(theirs).to(memory_format=torch.channels_last)
    fns = {"ours": lambda: run_ours(ours, x5, False),
           "ours_cl": lambda: run_ours(ours_cl, x5, True),
           "theirs": lambda: run_theirs(theirs, x5),
           "theirs_cl": lambda: run_theirs(theirs_cl, x5)}
    med, reps_done = interleaved_medians(fns, reps, warmup, budget)
    return med, reps_done, err_y, err_c


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="*", default=["16x16x32", "32x32x32", "64x64x32", "32x32x64"],
                   help="CINxHIDxSIZE items")
    p.add_argument("--T", type=int, default=10, help="sequence length")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget", type=float, default=8.0, help="seconds per shape after warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, conv_lstm from {conv_lstm.__file__}")
    print(f"# batch {a.batch}, T {a.T}, kernel 3, 1 layer, float32, forward no_grad, ms per T-step sequence (median)")
    print("| cin | hid | size | ours | ours CL | theirs | theirs CL | theirs/ours | theirs/ours CL "
          "| best theirs / best ours | reps | max|Δy| | max|Δc| |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec in a.shapes:
        cin, hid, size = (int(v) for v in spec.lower().split("x"))
        m, n, ey, ec = bench(cin, hid, size, a.T, a.batch, a.reps, a.warmup, a.budget)
        best_o, best_t = min(m["ours"], m["ours_cl"]), min(m["theirs"], m["theirs_cl"])
        print(f"| {cin} | {hid} | {size} | {m['ours']:.1f} | {m['ours_cl']:.1f} | {m['theirs']:.1f} | "
              f"{m['theirs_cl']:.1f} | {m['theirs'] / m['ours']:.2f} | {m['theirs'] / m['ours_cl']:.2f} | "
              f"{best_t / best_o:.2f} | {n} | {ey:.1e} | {ec:.1e} |", flush=True)


if __name__ == "__main__":
    main()
