"""``convrnn demo``: a short showcase of the library (replaced by the maze demo once a bundled
maze model exists)."""
from __future__ import annotations

import time

import torch

import convrnn


def run_demo(args) -> int:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    print(f"{'cell':<10} {'ms/step':>8}  ACT steps per sample (untrained halting unit)")
    for name in convrnn.list_cells():
        kw = {"kernel_size": 5} if name == "hgru" else {}
        model = convrnn.create_model("convrnn_dense", cell=name, width=16, cell_kwargs=kw, halt_bias=-1.0).eval()
        with torch.no_grad():
            model.halting_unit.fc.weight.normal_(0, 2.0)
            t = time.perf_counter()
            out = model(x * torch.linspace(0.1, 2, 8).view(8, 1, 1, 1), steps=12, halting="act")
            ms = (time.perf_counter() - t) * 1000 / int(out.steps.sum()) * len(x)
        print(f"{name:<10} {ms:8.2f}  {out.steps.tolist()}")
    return 0
