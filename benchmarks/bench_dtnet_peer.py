"""A DT-net-with-recall training step: convrnn as the bundled CPU maze config runs it, against a
plain-PyTorch DT-net written from the paper the way the DeepThinking repository runs it.

Setting (issue 10): width 32, 10 iterations, batch 16 of 9x9 mazes (24 px), one thread, progressive
loss (Bansal et al. 2022) with the same (n, k) draws for both sides at every repeat, AdamW, gradient
clipping 1.0. One timed unit = loss, backward and optimizer step.

The peer ("peer", fp32, default layout), from Bansal et al. (2022) and the DeepThinking code's
structure: a 3x3 projection of the image to ``width`` channels + ReLU; per iteration the raw image
is concatenated to the state (recall), a 3x3 recall convolution + ReLU, then two residual basic
blocks (two 3x3 convolutions each, no biases); the 3-convolution head (width -> 32 -> 8 -> 2) is
evaluated at every iteration and stored; the progressive pass runs n iterations without gradient,
detaches, then k with gradient. Loss: cross-entropy masked to non-wall pixels.

Ours: ``create_model("dtnet_recall_mazes", width=32, steps=10)`` trained through
``convrnn.train.compute_loss`` (the trainer's own step, the maze task's weighted criterion), with
the head only on the steps that are read out and the recall convolution's input half hoisted out
of the loop. Variants (all in one interleaved run):

* ``ours_fp32``             fp32, default layout
* ``ours_fp32_nohoist``     fp32 with the input drive recomputed every step (what hoisting saves)
* ``ours_bf16``             bf16 autocast
* ``ours_bf16_cl``          bf16 + channels_last: the bundled ``mazes_cpu`` config  <- the goal's ratio
* ``ours_bf16_cl_compile``  the same with the cell compiled by inductor (``--compile``)
* ``peer_bf16_cl``          the peer given bf16 + channels_last too (what precision alone buys it)

Ratios are peer (fp32) / variant: > 1 means faster than the peer. Goal: ``ours_bf16_cl`` >= 2.0x
(stretch 3x).

    PYTHONPATH=src python benchmarks/bench_dtnet_peer.py [--reps 30] [--compile]
"""
from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from torch import nn

import convrnn
from _timing import interleaved_medians
from convrnn.config import TrainConfig
from convrnn.tasks.maze_task import MazeTask
from convrnn.tasks.mazes import generate_mazes
from convrnn.train import compute_loss


class BasicBlock(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv1 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1, bias=False)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class PeerDTNet(nn.Module):
    """DT-net with recall as the DeepThinking code runs it (head at every iteration, outputs stored)."""

    def __init__(self, width=32, in_channels=3):
        super().__init__()
        self.projection = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.ReLU())
        self.recur_block = nn.Sequential(nn.Conv2d(width + in_channels, width, 3, padding=1, bias=False), nn.ReLU(),
                                         BasicBlock(width), BasicBlock(width))
        self.head = nn.Sequential(nn.Conv2d(width, 32, 3, padding=1, bias=False), nn.ReLU(),
                                  nn.Conv2d(32, 8, 3, padding=1, bias=False), nn.ReLU(),
                                  nn.Conv2d(8, 2, 3, padding=1, bias=False))

    def forward(self, x, iters_to_do, interim_thought=None):
        thought = self.projection(x) if interim_thought is None else interim_thought
        all_outputs = torch.zeros((x.size(0), iters_to_do, 2, x.size(2), x.size(3)), device=x.device)
        for i in range(iters_to_do):
            thought = self.recur_block(torch.cat([thought, x], 1))
            out = self.head(thought)
            all_outputs[:, i] = out
        return out, thought, all_outputs


def peer_step(net, opt, x, y, mask, max_iters, alpha, step, seed=0):
    out_max, _, _ = net(x, max_iters)
    loss_max = (F.cross_entropy(out_max.float(), y, reduction="none") * mask).mean()
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)          # the draws ours makes at this step
    n = int(torch.randint(0, max_iters, (1,), generator=g))
    k = int(torch.randint(1, max_iters - n + 1, (1,), generator=g))
    thought = None
    if n > 0:
        with torch.no_grad():
            _, thought, _ = net(x, n)
        thought = thought.detach()
    out_prog, _, _ = net(x, k, thought)
    loss_prog = (F.cross_entropy(out_prog.float(), y, reduction="none") * mask).mean()
    loss = (1 - alpha) * loss_max + alpha * loss_prog
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds of timing at most")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="add the inductor-compiled variant")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    xi, yi = generate_mazes(args.batch, 9, seed=0)
    x, y = torch.from_numpy(xi).float(), torch.from_numpy(yi).long()
    mask = (x.amax(1) > 0).float()
    task = MazeTask()
    cfg = TrainConfig.from_dict(dict(loss="progressive", steps=args.iters, alpha=0.5, path_weight=3.0))
    crit = task.criterion(x, cfg)

    def make_peer(cl):
        torch.manual_seed(0)
        net = PeerDTNet(args.width)
        xx = x
        if cl:
            net = net.to(memory_format=torch.channels_last)
            xx = x.contiguous(memory_format=torch.channels_last)
        return net, torch.optim.AdamW(net.parameters(), 1e-3), xx

    def make_ours(cl, compile_=False, hoist=True):
        torch.manual_seed(0)
        m = convrnn.create_model("dtnet_recall_mazes", width=args.width, steps=args.iters)
        if not hoist:
            m._hoists = lambda: False
        xx = x
        if cl:
            m = m.to(memory_format=torch.channels_last)
            xx = x.contiguous(memory_format=torch.channels_last)
        if compile_:
            m.cell.compile(backend="inductor")
        return m, torch.optim.AdamW(m.parameters(), 1e-3), xx

    def amp(on):
        return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()

    def peer_fn(cl, bf16):
        net, opt, xx = make_peer(cl)

        def f(i):
            with amp(bf16):
                peer_step(net, opt, xx, y, mask, args.iters, 0.5, i)
        return f

    def ours_fn(cl, bf16, compile_=False, hoist=True):
        m, opt, xx = make_ours(cl, compile_, hoist)

        def f(i):
            with amp(bf16):
                loss = compute_loss(cfg, m, xx, y, crit, i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
        return f

    fns = {"peer": peer_fn(False, False), "ours_fp32": ours_fn(False, False),
           "ours_fp32_nohoist": ours_fn(False, False, hoist=False), "ours_bf16": ours_fn(False, True),
           "ours_bf16_cl": ours_fn(True, True), "peer_bf16_cl": peer_fn(True, True)}
    if args.compile:
        fns["ours_bf16_cl_compile"] = ours_fn(True, True, compile_=True)
    med, reps = interleaved_medians(fns, args.reps, warmup=3, budget=args.budget, grad=True)
    print(f"DT-net with recall training step: width {args.width}, {args.iters} iterations, batch {args.batch} of "
          f"9x9 mazes, {torch.get_num_threads()} thread(s), torch {torch.__version__}, {reps} repeats (median)\n")
    print("| variant | ms / step | peer (fp32) / variant |")
    print("| --- | ---: | ---: |")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} | {med['peer'] / v:.2f}x |")


if __name__ == "__main__":
    main()
