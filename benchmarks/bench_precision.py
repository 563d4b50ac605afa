"""fp32 vs bf16 autocast vs bf16 + channels_last on this CPU: a training step (forward + backward +
AdamW) of every cell inside the weight-tied model, and of each model family, one interleaved run.

Cells: ``create_model("convrnn_dense", cell=NAME, width=32)`` (encoder, the cell iterated 10 steps
with recall, dense head; hGRU and LocRNN with 3x3 kernels so every cell sees the same maps), batch
16, 32x32 images, cross-entropy on the last step. Families at their registered sizes: DT-net with
recall (``dtnet_recall_mazes``, width 32, 24 px mazes), the multi-area networks of the digits
experiments (``greco_ff``/``greco_fb`` at width 0.5 on 16 px digits, batch 32), a multi-area network
with feedback (``greco_fb``, 32 px images, 10 steps), the RGC network (``rgc_shallow``), PC-RNN (``pcrnn``, 64 px
single-coil k-space, 5 iterations per module) and the fastMRI U-Net (``unet_mri``, chans 8, 64 px).

Columns: ms per step in fp32, then the speed-up over fp32 of fp32 + channels_last, bf16 and
bf16 + channels_last (> 1: faster).

    PYTHONPATH=src python benchmarks/bench_precision.py [--reps 7] [--only cells|families]
"""
from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F

import convrnn
from _timing import interleaved_medians

VARIANTS = {"fp32": (False, False), "fp32_cl": (False, True), "bf16": (True, False), "bf16_cl": (True, True)}


def classification_batch(B, C, S, classes):
    g = torch.Generator().manual_seed(0)
    return torch.rand(B, C, S, S, generator=g), torch.randint(0, classes, (B,), generator=g)


def cases(only):
    B = 16
    if only in (None, "cells"):
        for name in convrnn.list_cells():
            kw = {"kernel_size": 3} if name in ("hgru", "locrnn") else {}
            x = torch.rand(B, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            y = torch.randint(0, 2, (B, 32, 32), generator=torch.Generator().manual_seed(1))
            yield (f"cell {name}", lambda n=name, k=kw: convrnn.create_model("convrnn_dense", cell=n, width=32,
                                                                             cell_kwargs=k, steps=10),
                   x, y, lambda m, x: m(x, steps=10).output)
    if only in (None, "families"):
        from convrnn.tasks.mazes import generate_mazes
        xi, yi = generate_mazes(B, 9, seed=0)
        yield ("DT-net recall w32 (mazes)", lambda: convrnn.create_model("dtnet_recall_mazes", width=32),
               torch.from_numpy(xi), torch.from_numpy(yi), lambda m, x: m(x, steps=10).output)
        x, y = classification_batch(32, 1, 16, 10)        # the feedback_dropout_digits / cells_digits setting
        for name in ("greco_ff", "greco_fb"):
            yield (f"{name} width 0.5 (digits, 16 px)",
                   lambda n=name: convrnn.create_model(n, width=0.5, in_channels=1, num_classes=10), x, y,
                   lambda m, x: m(x, steps=10).output)
        x, y = classification_batch(B, 3, 32, 10)
        for name in ("greco_fb", "rgc_shallow"):
            yield (f"multi-area {name}", lambda n=name: convrnn.create_model(n), x, y,
                   lambda m, x: m(x, steps=10).output)
        k = torch.randn(B // 4, 2, 64, 64, generator=torch.Generator().manual_seed(0))
        mask = (torch.rand(64, generator=torch.Generator().manual_seed(1)) < 0.3).float()
        yield ("PC-RNN (MRI, 64 px)", lambda: convrnn.create_model("pcrnn"), (k * mask, mask),
               torch.rand(B // 4, 2, 64, 64), lambda m, inp: m(*inp).image)
        yield ("U-Net chans 8 (MRI, 64 px)", lambda: convrnn.create_model("unet_mri", chans=8),
               torch.rand(B // 4, 1, 64, 64), torch.rand(B // 4, 64, 64), lambda m, x: m(x)[:, 0])


def loss_of(out, y):
    if out.dtype.is_floating_point and y.dtype.is_floating_point:
        return F.mse_loss(out.float(), y)
    return F.cross_entropy(out.float(), y)


def step_fn(build, x, y, forward, bf16, cl):
    torch.manual_seed(0)
    m = build()
    if cl:
        m = m.to(memory_format=torch.channels_last)
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)

    def f():
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = loss_of(forward(m, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of timing per case at most")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["cells", "families"], default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"training step (forward + backward + AdamW), {torch.get_num_threads()} thread(s), torch "
          f"{torch.__version__}, native bf16: {convrnn.runtime.cpu_has_native_bf16()}\n")
    print("| model | fp32 ms | fp32+CL | bf16 | bf16+CL | best |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for label, build, x, y, forward in cases(args.only):
        fns = {k: step_fn(build, x, y, forward, *v) for k, v in VARIANTS.items()}
        med, _ = interleaved_medians(fns, args.reps, warmup=1, budget=args.budget, grad=True)
        best = min(med, key=med.get)
        print(f"| {label} | {med['fp32']:.1f} | {med['fp32'] / med['fp32_cl']:.2f}x | {med['fp32'] / med['bf16']:.2f}x "
              f"| {med['fp32'] / med['bf16_cl']:.2f}x | {best} |", flush=True)


if __name__ == "__main__":
    main()
