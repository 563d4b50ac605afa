"""Accuracy of every clutter-trained run on scikit-learn's handwritten digits (another source: handwriting,
not our font), centred at the generator's glyph height on 32 px (scripts/digits_as_clutter.py), clean and
with Gaussian noise 0.2; final readout step (10). Writes transfer_digits.json next to this script.

    PYTHONPATH=src python results/cpu-2026-12-01/transfer_digits.py RUNS_ROOT [RUNS_ROOT ...]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from digits_as_clutter import digits_canvas  # noqa: E402

from convrnn.analysis.robustness import speed_accuracy  # noqa: E402
from convrnn.checkpoint import load_model  # noqa: E402

torch.set_num_threads(1)
sets = {}
for noise in (0.0, 0.2):
    x, y = digits_canvas(32, noise=noise)
    sets[noise] = (torch.from_numpy(x).float() / 255, torch.from_numpy(y))
out = {}
for root in sys.argv[1:]:
    for cond in sorted(Path(root, "runs").iterdir()):
        for run in sorted(cond.iterdir()):
            model = load_model(run / "model.safetensors").eval()
            out.setdefault(Path(root).name, {}).setdefault(cond.name, {})[run.name] = {
                f"noise {k:g}": speed_accuracy(model, x, y, 10, 256)["final"] for k, (x, y) in sets.items()}
            print(Path(root).name, cond.name, run.name, out[Path(root).name][cond.name][run.name], flush=True)
summary = {e: {c: {k: [float(np.mean([r[k] for r in runs.values()])), float(np.std([r[k] for r in runs.values()], ddof=1))]
                   for k in next(iter(runs.values()))} for c, runs in conds.items()} for e, conds in out.items()}
Path(__file__).with_name("transfer_digits.json").write_text(json.dumps({"runs": out, "mean_sd": summary}, indent=1))
print(json.dumps(summary, indent=1))
