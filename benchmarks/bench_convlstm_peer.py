"""``convrnn.ConvRNN("convlstm", ...)`` vs the ``conv-lstm`` package from PyPI (0.1.2, a fork of
ndrplz/ConvLSTM_pytorch, import name ``conv_lstm``) over the same sequence, in one interleaved run.

Both: one layer, kernel 3, with bias, ``cin -> hid`` channels over a (B, T, C, H, W) sequence from a
zero state, returning all T outputs and the last state. Theirs is
``conv_lstm.ConvLSTM(cin, hid, 3, num_layers=1, batch_first=True)``; ours is
``convrnn.ConvRNN("convlstm", cin, hid)``, which computes the input half of the gate convolution
for all T frames as one batched convolution and only the state half per step. Two modes: forward
under ``torch.no_grad`` and forward + backward (sum of the outputs). Variants:

* ``ours`` / ``theirs``          fp32, default layout (the goal's ratio: theirs / ours >= 1.3)
* ``ours_cl``                    fp32, channels_last module and input
* ``ours_batched``               fp32, the input half of the gates as one convolution over all B·T frames
                                 (``batch_inputs=True``, the GPU default)
* ``ours_bf16`` / ``ours_bf16_cl``  bf16 autocast (what it adds on an AVX512-BF16 CPU)
* ``theirs_bf16_cl``             theirs given bf16 + channels_last as well

Numerical check: their gate split is ``i, f, o, g`` like ours, but we compute ``σ(f + 1)`` for the
forget gate. With our conv weights copied and 1 added to their forget-gate bias slice, the two
compute the same function; the script prints the max abs difference of all outputs and of ``c``.

Needs ``pip install --no-deps conv-lstm==0.1.2`` (its only dependency is torch).

    PYTHONPATH=src python benchmarks/bench_convlstm_peer.py                 # B 8, T 10, 32 -> 32, 32 px
    PYTHONPATH=src python benchmarks/bench_convlstm_peer.py --shapes 16x16x32 32x32x32 32x32x64
"""
from __future__ import annotations

import argparse
import contextlib
import copy

import torch

import convrnn
from _timing import interleaved_medians

try:
    import conv_lstm
except ImportError as e:  # pragma: no cover - a script, not a test
    raise SystemExit("needs the PyPI package conv-lstm==0.1.2: pip install --no-deps conv-lstm==0.1.2") from e


def build_pair(cin: int, hid: int):
    ours = convrnn.ConvRNN("convlstm", cin, hid, kernel_size=3)
    theirs = conv_lstm.ConvLSTM(cin, hid, 3, num_layers=1, batch_first=True, bias=True)
    tconv, oconv = theirs.cell_list[0].conv, ours.layers[0].gates
    assert tconv.weight.shape == oconv.weight.shape, (tconv.weight.shape, oconv.weight.shape)
    with torch.no_grad():
        tconv.weight.copy_(oconv.weight)
        b = oconv.bias.clone()
        b[hid:2 * hid] += 1.0           # our σ(f + 1) == their σ(f') with f' bias = f bias + 1
        tconv.bias.copy_(b)
    return ours, theirs


def run_ours(model, x5):
    out, (state,) = model(x5)
    return out, state


def run_theirs(model, x5):
    layer_outputs, last_states = model(x5)
    h, c = last_states[0]
    return layer_outputs[0], (h, c)


def check_same(ours, theirs, x5) -> tuple[float, float]:
    with torch.no_grad():
        yo, (_, co) = run_ours(ours, x5)
        yt, (_, ct) = run_theirs(theirs, x5)
    return (yo - yt).abs().max().item(), (co - ct).abs().max().item()


def variant(run, model, x5, cl: bool, bf16: bool, backward: bool):
    if cl:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x5 = x5.contiguous(memory_format=torch.channels_last_3d)   # (B, T, C, H, W): every frame channels_last
    x5 = x5.clone().requires_grad_(backward)

    def f():
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out, _ = run(model, x5)
        if backward:
            out.float().sum().backward()
    return f


def bench(cin, hid, size, T, batch, reps, warmup, budget, backward):
    ours, theirs = build_pair(cin, hid)
    batched = copy.deepcopy(ours)
    batched.batch_inputs = True
    x5 = torch.randn(batch, T, cin, size, size)
    err_y, err_c = check_same(ours, theirs, x5)
    fns = {"ours": variant(run_ours, ours, x5, False, False, backward),
           "theirs": variant(run_theirs, theirs, x5, False, False, backward),
           "ours_cl": variant(run_ours, ours, x5, True, False, backward),
           "ours_batched": variant(run_ours, batched, x5, False, False, backward),
           "ours_bf16": variant(run_ours, ours, x5, False, True, backward),
           "ours_bf16_cl": variant(run_ours, ours, x5, True, True, backward),
           "theirs_bf16_cl": variant(run_theirs, theirs, x5, True, True, backward)}
    med, reps_done = interleaved_medians(fns, reps, warmup, budget, grad=backward)
    return med, reps_done, err_y, err_c


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="*", default=["32x32x32"], help="CINxHIDxSIZE items")
    p.add_argument("--T", type=int, default=10, help="sequence length")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--budget", type=float, default=30.0, help="seconds per shape and mode after warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, conv_lstm from {conv_lstm.__file__}")
    print(f"# batch {a.batch}, T {a.T}, kernel 3, 1 layer, ms per T-step sequence (median); ratios theirs (fp32) / "
          "variant")
    print("| mode | cin | hid | size | theirs ms | ours ms | theirs/ours | ours CL | ours batched | ours bf16 "
          "| ours bf16+CL | theirs bf16+CL | reps | max|Δy| | max|Δc| |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backward in (False, True):
        for spec in a.shapes:
            cin, hid, size = (int(v) for v in spec.lower().split("x"))
            m, n, ey, ec = bench(cin, hid, size, a.T, a.batch, a.reps, a.warmup, a.budget, backward)
            r = {k: m["theirs"] / v for k, v in m.items()}
            print(f"| {'fwd+bwd' if backward else 'fwd no_grad'} | {cin} | {hid} | {size} | {m['theirs']:.1f} | "
                  f"{m['ours']:.1f} | {r['ours']:.2f}x | {r['ours_cl']:.2f}x | {r['ours_batched']:.2f}x | {r['ours_bf16']:.2f}x | "
                  f"{r['ours_bf16_cl']:.2f}x | {r['theirs_bf16_cl']:.2f}x | {n} | {ey:.1e} | {ec:.1e} |", flush=True)


if __name__ == "__main__":
    main()
