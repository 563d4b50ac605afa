"""The ``convrnn`` command line: ``convrnn list|demo|data|train|eval``."""
from __future__ import annotations

import argparse
import sys


def cmd_list(args) -> int:
    import convrnn
    print("cells: ", ", ".join(convrnn.list_cells()))
    print("models:", ", ".join(convrnn.list_models()))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def cmd_data(args) -> int:
    if args.task == "mazes":
        from .tasks.mazes import generate_mazes, save_mazes
        x, y = generate_mazes(args.n, args.size, seed=args.seed, algorithm=args.algorithm,
                              start_dead_end=not args.start_anywhere, cycles=args.cycles)
        path = save_mazes(args.out, x, y)
        print(f"wrote {args.n} {args.size}x{args.size} mazes ({x.shape[-1]} px) to {path}")
        return 0
    if args.task == "mri":
        from .tasks.mri import write_phantom_volumes
        paths = write_phantom_volumes(args.out, args.n_volumes, slices=args.slices, size=args.size, coils=args.coils,
                                      seed=args.seed, undersample=args.undersample)
        kind = f"{args.coils}-coil" if args.coils else "single-coil"
        print(f"wrote {len(paths)} {kind} phantom volumes ({args.slices} slices of {args.size}x{args.size}) "
              f"in the fastMRI layout to {args.out}")
        return 0
    from .tasks.pathfinder import generate_pathfinder, save_pathfinder
    fmt = args.format or ("npz" if str(args.out).endswith(".npz") else "lra")
    data = generate_pathfinder(args.n, args.length, args.preset, args.seed, dense=args.dense)
    save_pathfinder(args.out, data, fmt, batch_size=args.batch_size, length=args.length)
    print(f"wrote {args.n} images ({int(data['labels'].sum())} positive) of {args.preset} length {args.length} "
          f"to {args.out} ({fmt})")
    return 0


def cmd_train(args) -> int:
    from .config import load_config
    from .train import train
    cfg = load_config(args.config, args.overrides)
    res = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"done: val acc {res['val_acc']:.4f}, mean steps {res['val_steps']:.2f}; outputs in {res['out_dir']}")
    return 0


def _levels(text: str, kind=int) -> list:
    try:
        vals = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {'integers' if kind is int else 'numbers'}, "
                         f"got {text!r}") from None
    if not vals:
        raise ValueError("expected at least one level")
    return vals


def cmd_eval(args) -> int:
    import json

    import torch

    from .checkpoint import load_model
    from .evaluate import evaluate, write_report
    from .tasks import get_task
    from .train import pick_device
    from .halting import get_policy
    args.halting = args.halting or _default_halting(args.checkpoint)
    get_policy(args.halting)
    levels = {"mazes": lambda: _levels(args.sizes), "pathfinder": lambda: _levels(args.lengths),
              "classification": lambda: _levels(args.noise, float)}[args.task]()
    device = pick_device(args.device)
    if args.checkpoint in _bundled_names():
        import convrnn
        model = convrnn.create_model(args.checkpoint, pretrained=True)
    else:
        model = load_model(args.checkpoint)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    task = get_task(args.task, **_task_options(args))
    max_steps = args.max_steps or model.config.steps * 4
    result = evaluate(model, task, levels, args.n, max_steps, args.halting, seed=args.seed,
                      batch_size=args.batch_size, device=str(device), data=args.data, curve=not args.no_curves,
                      amp=args.amp, progress=not args.no_progress)
    result["checkpoint"] = str(args.checkpoint)
    paths = write_report(result, args.out, model, task, device=str(device))
    if "spearman_steps_vs_level" in result:
        print(f"Spearman correlation of steps used with difficulty: {result['spearman_steps_vs_level']:.3f}")
    print(f"{'level':>6} {'acc %':>7} {'mean steps':>10} {'median':>7} {'ms/sample':>10}")
    for k, v in result["levels"].items():
        print(f"{k:>6} {100 * v['accuracy']:7.1f} {v['mean_steps']:10.1f} {v['median_steps']:7.0f} "
              f"{v['ms_per_sample']:10.1f}")
    print("wrote", ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(result))
    return 0


def _run_config(checkpoint) -> dict:
    """The training config beside a checkpoint folder (``config.json``), or ``{}``."""
    from pathlib import Path
    cfg = Path(checkpoint) / "config.json"
    if cfg.is_file():
        import json
        try:
            return json.loads(cfg.read_text())
        except ValueError:
            return {}
    return {}


def _default_halting(checkpoint) -> str:
    """The policy the model was trained for (ACT, PonderNet), else halting on a stable answer."""
    return {"act": "act", "ponder": "ponder"}.get(_run_config(checkpoint).get("loss"), "stable")


def _task_options(args) -> dict:
    """PathFinder needs its canvas preset (--preset, else the training run's); classification its
    dataset options (from the training run's data_kwargs)."""
    if args.task == "classification":
        return dict(_run_config(args.checkpoint).get("data_kwargs", {}))
    if args.task != "pathfinder":
        return {}
    preset = args.preset or _run_config(args.checkpoint).get("data_kwargs", {}).get("preset")
    return {"preset": preset} if preset else {}


def _bundled_names() -> set[str]:
    from .checkpoint import PRETRAINED_DIR
    return {p.stem for p in PRETRAINED_DIR.glob("*.safetensors")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convrnn", description="Convolutional recurrent networks for vision.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered cells and models").set_defaults(fn=cmd_list)

    d = sub.add_parser("demo", help="solve fresh mazes of growing size with the bundled model and adaptive halting")
    d.add_argument("--out", default="convrnn-demo", help="folder for the HTML report (default: %(default)s)")
    d.add_argument("--quick", action="store_true", help="a much smaller run (for tests)")
    d.add_argument("--device", default="auto")
    d.set_defaults(fn=cmd_demo)

    g = sub.add_parser("data", help="generate a data set")
    gs = g.add_subparsers(dest="task", required=True)
    m = gs.add_parser("mazes", help="easy-to-hard layout mazes")
    m.add_argument("--size", type=int, required=True, help="maze size N (odd, >= 5); image side 2N+6")
    m.add_argument("--n", type=int, required=True, help="number of mazes")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="a folder (inputs.npy + solutions.npy) or a .npz file")
    m.add_argument("--algorithm", default="dfs", choices=["dfs", "wilson"])
    m.add_argument("--start-anywhere", action="store_true", help="start cell need not be a dead end")
    m.add_argument("--cycles", type=float, default=0.0, help="percolation: chance to open each remaining wall")
    pf = gs.add_parser("pathfinder", help="PathFinder contour images (.npz or an LRA-style PNG folder)")
    pf.add_argument("--length", type=int, default=14, help="contour length in paddles (>= 3)")
    pf.add_argument("--preset", default="lra32", help="lra32 | lra64 | lra128 | lra256 | classic150")
    pf.add_argument("-n", "--n", type=int, required=True, help="number of images")
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--out", required=True, help="a .npz file or a folder (LRA layout: imgs/ + metadata/)")
    pf.add_argument("--format", default=None, choices=["npz", "lra"], help="default: npz for *.npz, else lra")
    pf.add_argument("--dense", action="store_true", help="also store the dense target (npz only)")
    pf.add_argument("--batch-size", type=int, default=1000, help="images per LRA batch folder")
    mr = gs.add_parser("mri", help="phantom MRI volumes written in the fastMRI h5 layout")
    mr.add_argument("--n-volumes", type=int, required=True)
    mr.add_argument("--out", required=True, help="output folder (one .h5 file per volume)")
    mr.add_argument("--slices", type=int, default=16)
    mr.add_argument("--size", type=int, default=128, help="image side in pixels")
    mr.add_argument("--coils", type=int, default=0, help="0 = single-coil, N = N-coil with smooth coil maps")
    mr.add_argument("--seed", type=int, default=0)
    mr.add_argument("--undersample", default=None, choices=["4x", "8x"],
                    help="write test-style files: masked k-space plus the mask, no targets")
    g.set_defaults(fn=cmd_data)

    t = sub.add_parser("train", help="train from a YAML config (a path or a bundled config name)")
    t.add_argument("config", help="YAML file or bundled config name (mazes_cpu, mazes_dtnet_gpu, mazes_adrnn)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=3 model_kwargs.width=32")
    t.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoint")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint over difficulty levels (JSON + PNG plots)")
    e.add_argument("checkpoint", help="checkpoint folder, .safetensors file, or a bundled model name")
    e.add_argument("--task", default="mazes", choices=["mazes", "pathfinder", "classification"])
    e.add_argument("--preset", default=None, help="PathFinder canvas preset (default: the training run's, else lra32)")
    e.add_argument("--sizes", default="9,13,19,33,59", help="maze sizes (default: %(default)s)")
    e.add_argument("--lengths", default="9,14,18,21,24", help="contour lengths (pathfinder)")
    e.add_argument("--noise", default="0,0.1,0.2,0.3", help="Gaussian noise levels (classification)")
    e.add_argument("--n", type=int, default=100, help="samples per level")
    e.add_argument("--max-steps", type=int, default=None, help="iteration cap (default: 4x training steps)")
    e.add_argument("--halting", default=None,
                   help="fixed | act | ponder | confidence | convergence | stable (default: act or ponder when the run "
                        "was trained with it, else stable)")
    e.add_argument("--data", default=None, help="evaluate on this file/folder instead of fresh samples")
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--amp", default="none", choices=["none", "bf16"], help="bf16 autocast (GPU)")
    e.add_argument("--out", default="eval-out")
    e.add_argument("--no-curves", action="store_true", help="skip accuracy-vs-step curves (faster)")
    e.add_argument("--json", action="store_true", help="also print the JSON result")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError) as e:  # user errors: one line
        print(f"convrnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
