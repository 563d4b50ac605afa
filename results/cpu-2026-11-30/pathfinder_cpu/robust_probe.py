"""How a dense PathFinder model holds up when the images change in ways other generators differ:
touching contours (gap 0), distractors crossing contours, thicker paddles, tighter or wider gaps between paddles, smaller markers,
denser clutter, lower contrast. Length 14, 300 images each, 30 steps, decision rule.

    python results/cpu-2026-11-30/pathfinder_cpu/robust_probe.py [RUN [OUT.json]]   # writes RUN/robust_probe.json
"""
import dataclasses, json, sys, torch, numpy as np
from convrnn.checkpoint import load_model
from convrnn.tasks.pathfinder import PRESETS, generate_pathfinder
from convrnn.tasks.pathfinder_task import decide
torch.set_num_threads(1)
run = sys.argv[1] if len(sys.argv) > 1 else "results/cpu-2026-11-30/pathfinder_cpu"
model = load_model(run).eval()
base = PRESETS["lra32"]
variants = {
    "lra32 (as trained)": base,
    "touching allowed (gap 0)": dataclasses.replace(base, gap=0),
    "distractors cross contours": dataclasses.replace(base, crossing=True),
    "paddles 1.5x thicker": dataclasses.replace(base, paddle_thickness=0.75),
    "paddles 2x thicker": dataclasses.replace(base, paddle_thickness=1.0),
    "margin 0.5 (tighter gaps)": dataclasses.replace(base, paddle_margin=0.5),
    "margin 1.5 (wider gaps)": dataclasses.replace(base, paddle_margin=1.5),
    "marker radius 1.0": dataclasses.replace(base, marker_radius=1.0),
    "clutter x2 (budget 40)": dataclasses.replace(base, distractor_budget=40),
}
res = {}
for name, p in variants.items():
    for contrast in (1.0, 0.5):
        try:
            d = generate_pathfinder(300, 14, p, seed=4242)
        except Exception as e:
            res[f"{name}, contrast {contrast}"] = str(e)[:60]; continue
        x = torch.from_numpy(d["images"]).float().div(255).unsqueeze(1) * contrast
        with torch.no_grad():
            out = model(x, steps=30).output
        acc = (decide(out) == torch.from_numpy(d["labels"])).float().mean().item()
        res[f"{name}, contrast {contrast}"] = round(acc, 3)
        print(f"{name:30s} contrast {contrast}: {acc:.3f}  ink {(d['images'] > 0).mean():.3f}", flush=True)
out = sys.argv[2] if len(sys.argv) > 2 else f"{run}/robust_probe.json"
json.dump(res, open(out, "w"), indent=1)
