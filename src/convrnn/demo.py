"""``convrnn demo``: the bundled maze solver decides for itself how long to think.

Generates fresh mazes of growing size (seeded) and solves them with the bundled ``adrnn_mazes``
(dtnet_mazes_w64, trained on 9x9 mazes, with a learned halting head) three ways: with its learned
halting head (its default), with the hand-made ``stable`` rule (halt once the answer has not changed for 5 steps), and with the best
single fixed step count for each size (an oracle read from the accuracy-vs-step curve). Then the
PathFinder part. Prints tables and writes an HTML report with the plots. No download: the weights
ship inside the package.
"""
from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import convrnn

from .analysis import plots
from .evaluate import SCHEMA, compare_policies
from .fileio import atomic_write_text
from .halting import StableOutput
from .runtime import pick_device, resolve_amp, use_channels_last
from .tasks.maze_task import MazeTask

MODEL = "adrnn_mazes"
FULL = [(9, 60), (13, 30), (19, 16), (25, 8), (33, 6)]   # (maze size, number of mazes)
QUICK = [(9, 6), (13, 3)]
PF_MODEL = "adrnn_pathfinder"
PF_FULL, PF_QUICK = (9, 14, 18, 21, 24), (9, 14)   # contour lengths (21 and 24 on the 48 px canvas)


def run_demo(args) -> int:
    torch.manual_seed(0)
    device = pick_device(getattr(args, "device", "auto"))
    amp = getattr(args, "amp", "none")
    model = use_channels_last(convrnn.create_model(MODEL, pretrained=True).to(device), "auto", device).eval()
    task = MazeTask()
    levels = QUICK if args.quick else FULL
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"convrnn demo: {MODEL} (dtnet_mazes_w64, trained on 9x9 mazes, with a learned halting head) solving fresh easy-to-hard mazes; "
          "halting: its learned head vs 'stable' (patience 5) vs the best fixed step count")
    result = {"schema": SCHEMA, "task": "mazes", "mode": "compare", "halting": "compare", "policies": ["learned", "stable"],
              "seed": 2026,
              "model": MODEL, "curve_kind": "fixed", "amp": resolve_amp(amp, device), "levels": {}}
    policies = {"learned": "learned", "stable": StableOutput(5)}
    t0 = time.perf_counter()
    for size, n in levels:
        x, y = task.eval_data(size, n, result["seed"])
        with tqdm(total=None, desc=f"{size}x{size} mazes", unit="step", leave=False, disable=None) as bar:
            lv = compare_policies(model, task, x, y, task.step_cap(size, model.config.steps), policies,
                                  batch_size=n, device=str(device), amp=amp, step_callback=bar.update)
        result["levels"][str(size)] = lv
        le, st = lv["policies"]["learned"], lv["policies"]["stable"]
        tqdm.write(f"  {size}x{size}: learned {100 * le['accuracy']:.1f}% in {le['mean_steps']:.1f} steps, stable "
                   f"{100 * st['accuracy']:.1f}% in {st['mean_steps']:.1f}, best fixed "
                   f"{100 * lv['best_fixed_accuracy']:.1f}% at {lv['best_fixed_steps']}")
    print(f"\n{'size':>6} {'mazes':>6} | {'learned':>8} {'steps':>6} | {'stable':>7} {'steps':>6} | "
          f"{'best fixed':>10} {'at':>4} | {'at cap':>6}")
    for k, v in result["levels"].items():
        le, st = v["policies"]["learned"], v["policies"]["stable"]
        print(f"{k + 'x' + k:>6} {v['n']:6d} | {100 * le['accuracy']:7.1f}% {le['mean_steps']:6.1f} | "
              f"{100 * st['accuracy']:6.1f}% {st['mean_steps']:6.1f} | {100 * v['best_fixed_accuracy']:9.1f}% "
              f"{v['best_fixed_steps']:4d} | {le['hit_cap'] + st['hit_cap']:6d}")
    atomic_write_text(out_dir / "demo.json", json.dumps(result, indent=1))
    pngs = [plots.plot_halting_comparison(result, out_dir)] + plots.plot_eval(result, out_dir)
    pngs.append(task.plot_examples(model, result, out_dir / "examples.png", level=levels[min(2, len(levels) - 1)][0],
                                   device=str(device)))
    pf, pf_pngs = pathfinder_part(args, device, amp, out_dir)
    total = time.perf_counter() - t0
    report = write_html(result, pngs, out_dir / "index.html", total, pf, pf_pngs)
    print(f"\nreport: {report}  ({total:.0f} s)")
    return 0


def pathfinder_part(args, device, amp, out_dir: Path) -> tuple[dict, list[Path]]:
    """PathFinder: the bundled model halts with its learned head, later on longer contours."""
    from .evaluate import evaluate
    from .tasks.pathfinder_task import PathfinderTask
    model = use_channels_last(convrnn.create_model(PF_MODEL, pretrained=True).to(device), "auto", device).eval()
    task = PathfinderTask()
    lengths, n = (PF_QUICK, 8) if args.quick else (PF_FULL, 100)
    print(f"\nPathFinder: {PF_MODEL} (trained at contour length 14 on 32 px) with its learned halting")
    result = evaluate(model, task, list(lengths), n, 80, "learned", seed=2026, batch_size=n, device=str(device),
                      curve="anytime", progress=False, amp=amp)
    result.update(model=PF_MODEL, curve_kind="anytime")
    print(f"{'length':>7} {'canvas':>9} {'images':>7} {'accuracy':>9} {'mean steps':>11} {'median':>7}")
    for k, v in result["levels"].items():
        print(f"{k:>7} {v['canvas']:>9} {v['n']:7d} {100 * v['accuracy']:8.1f}% {v['mean_steps']:11.1f} "
              f"{v['median_steps']:7.0f}")
    if "spearman_steps_vs_level" in result:
        print(f"Spearman correlation of steps with contour length: {result['spearman_steps_vs_level']:.2f}")
    sub = out_dir / "pathfinder"
    sub.mkdir(exist_ok=True)
    atomic_write_text(sub / "demo.json", json.dumps(result, indent=1))
    pngs = [task.plot_fill(model, lengths[-1], sub / "fill_step_by_step.png", device=str(device))]
    pngs += plots.plot_eval(result, sub)
    return result, pngs


def write_html(result: dict, pngs: list[Path], path: Path, seconds: float, pf: dict | None = None,
               pf_pngs: list[Path] = ()) -> Path:
    rows = "".join(f"<tr><td>{k}x{k}</td><td>{v['n']}</td><td>{100 * le['accuracy']:.1f}%</td>"
                   f"<td>{le['mean_steps']:.1f}</td><td>{100 * st['accuracy']:.1f}%</td>"
                   f"<td>{st['mean_steps']:.1f}</td><td>{100 * v['best_fixed_accuracy']:.1f}%</td>"
                   f"<td>{v['best_fixed_steps']}</td><td>{le['hit_cap'] + st['hit_cap']}</td></tr>"
                   for k, v in result["levels"].items()
                   for le, st in [(v["policies"]["learned"], v["policies"]["stable"])])
    def figures(paths):
        return "".join(f"<figure><img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
                       f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>" for p in paths)
    imgs = figures(pngs)
    pf_html = ""
    if pf:
        pf_rows = "".join(f"<tr><td>{k}</td><td>{html.escape(v['canvas'])}</td><td>{v['n']}</td>"
                          f"<td>{100 * v['accuracy']:.1f}%</td><td>{v['mean_steps']:.1f}</td>"
                          f"<td>{v['median_steps']:.0f}</td></tr>" for k, v in pf["levels"].items())
        pf_html = f"""<h2>PathFinder: a learned halting head, later on longer contours</h2>
<p>Model <code>{html.escape(pf['model'])}</code>, trained on contour length 14 (32 px) with a per-pixel target,
traces the contours from both markers and stops when its learned halting head says the answer has settled.
Lengths 21 and 24 are drawn on a 48 px canvas with the same paddles (zero-shot).</p>
<table><tr><th>length</th><th>canvas</th><th>images</th><th>accuracy</th><th>mean steps</th><th>median steps</th></tr>
{pf_rows}</table>{figures(pf_pngs)}"""
    page = f"""<!doctype html><meta charset="utf-8"><title>convrnn demo</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}img{{max-width:100%}}</style>
<h1>convrnn demo: thinking longer on harder mazes</h1>
<p>Model <code>{html.escape(result['model'])}</code>, trained on 9x9 mazes only, solves
fresh easy-to-hard mazes (seed {result['seed']}). Each maze halts when the model's learned halting head
says its answer is done; for comparison the hand-made <code>stable</code> rule (halt once the answer has
not changed for 5 steps) and the best single fixed step count for each size (an oracle). A maze counts as
solved only if every pixel is right; "at cap" counts runs that reached the step cap without halting.
Total time {seconds:.0f} s.</p>
<table><tr><th>size</th><th>mazes</th><th>learned: accuracy</th><th>mean steps</th><th>stable: accuracy</th>
<th>mean steps</th><th>best fixed: accuracy</th><th>steps</th><th>at cap</th></tr>
{rows}</table>{imgs}{pf_html}"""
    atomic_write_text(path, page)
    return path
