# Over 600 lines on purpose: one argparse tree for every subcommand and the thin handlers that call the app layer.
"""The ``convrnn`` command line: ``convrnn list|demo|data|train|eval|fit-halting|experiment|analyze|search``."""
from __future__ import annotations

import argparse
import sys

from .tasks.base import parse_levels as _levels


def cmd_list(args) -> int:
    import convrnn
    print("cells: ", ", ".join(convrnn.list_cells()))
    print("models:", ", ".join(convrnn.list_models()))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def _check_out(out, force: bool) -> None:
    """``--out`` must name something, and replace an existing file or non-empty folder only with --force."""
    from pathlib import Path
    if not str(out).strip():
        raise ValueError("--out is empty: expected a file or folder path")
    p = Path(out)
    if force or not p.exists():
        return
    if p.is_dir() and not any(p.iterdir()):
        return
    kind = "folder is not empty" if p.is_dir() else "file exists"
    raise FileExistsError(f"--out {p}: the {kind}; pass --force to replace its data, or choose another --out")


def cmd_data(args) -> int:
    _check_out(args.out, args.force)
    if args.task == "mazes":
        from .tasks.mazes import family_options, image_side, write_mazes
        opts = dict(algorithm=args.algorithm, start_dead_end=not args.start_anywhere, cycles=args.cycles,
                    unique_path=args.unique_path)
        if args.family:
            if opts != dict(algorithm="dfs", start_dead_end=True, cycles=0.0, unique_path=False):
                raise ValueError("--family sets the generator options itself; drop --algorithm, --start-anywhere, "
                                 "--cycles and --unique-path")
            opts = family_options(args.family)
        path = write_mazes(args.out, args.n, args.size, seed=args.seed, dtype="float32" if args.float32 else "uint8",
                           **opts)
        print(f"wrote {args.n} {args.size}x{args.size} mazes ({image_side(args.size)} px) to {path}")
        return 0
    if args.task == "clutter":
        from .tasks.clutter import write_clutter
        knobs = {k: getattr(args, k) for k in ("clutter", "debris", "occlusion", "noise", "jitter")
                 if getattr(args, k) is not None}
        path = write_clutter(args.out, args.n, args.size, args.level, args.seed, args.format, **knobs)
        print(f"wrote {args.n} cluttered {args.size} px images (level {args.level}"
              f"{', ' + ', '.join(f'{k}={v}' for k, v in knobs.items()) if knobs else ''}) to {path}")
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
    from .train import metric_label, train
    cfg = load_config(args.config, args.overrides)
    res = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"done: val {metric_label(res['metric'])} {res['val_acc']:.4f}, mean steps {res['val_steps']:.2f}; "
          f"outputs in {res['out_dir']}")
    return 0


def cmd_eval(args) -> int:
    import json

    from .checkpoint import load_model
    from .evaluate import default_step_cap, evaluate, resolve_policy, write_report
    from .runtime import pick_device, use_channels_last
    from .tasks import task_class
    if args.task == "mri":          # several checkpoints, volume-wise metrics: its own command path
        return cmd_eval_mri(args)
    if len(args.checkpoint) != 1:
        raise ValueError(f"--task {args.task} evaluates one checkpoint, got {len(args.checkpoint)} "
                         "(several are for --task mri)")
    args.checkpoint = args.checkpoint[0]
    if _run_config(args.checkpoint).get("task") == "mri":
        raise ValueError(f"{args.checkpoint}: this is an MRI model; use --task mri")
    args.n = 100 if args.n is None else args.n
    cls = task_class(args.task)
    levels = cls.eval_levels(args)               # each task reads its own options (--sizes, --lengths, --noise)
    device = pick_device(args.device)
    if args.checkpoint in _bundled_names():
        import convrnn
        model = convrnn.create_model(args.checkpoint, pretrained=True)
    else:
        model = load_model(args.checkpoint)
    if type(model).__name__ in ("PCRNN", "UNet"):
        raise ValueError(f"{args.checkpoint}: this is an MRI model; use --task mri (a {type(model).__name__})")
    model.register_forward_hook(_refuse_non_finite)      # a diverged model must not read as 0% accuracy
    args.halting = args.halting or _default_halting(args.checkpoint, model)
    resolve_policy(model, args.halting)          # a bad name fails here, before any data is made
    model = use_channels_last(model.to(device), "auto", device)    # 1.3x on the CPU for ungated cells
    task = cls(**cls.eval_options(args, _run_config(args.checkpoint)))
    max_steps = args.max_steps or {lv: default_step_cap(task, lv, model.config.steps) for lv in levels}
    if args.compare:
        return _eval_compare(args, model, task, levels, max_steps, device)
    result = evaluate(model, task, levels, args.n, max_steps, args.halting, seed=args.seed,
                      batch_size=args.batch_size, device=str(device), data=args.data, curve=not args.no_curves,
                      amp=args.amp, progress=not args.no_progress, curve_steps=args.curve_steps)
    result["checkpoint"] = str(args.checkpoint)
    result.update(task.report_info())            # e.g. the maze family
    paths = write_report(result, args.out, model, task, device=str(device))
    if "spearman_steps_vs_level" in result:
        print(f"Spearman correlation of steps used with difficulty: {result['spearman_steps_vs_level']:.3f}")
    if "spearman_steps_vs_sample_difficulty" in result:
        print(f"Spearman correlation of steps used with each sample's {result['sample_difficulty']}: "
              f"{result['spearman_steps_vs_sample_difficulty']:.3f}")
    print(f"{'level':>6} {'acc %':>7} {'mean steps':>10} {'median':>7} {'cap':>5} {'at cap':>6} {'ms/sample':>10}")
    for k, v in result["levels"].items():
        print(f"{k:>6} {100 * v['accuracy']:7.1f} {v['mean_steps']:10.1f} {v['median_steps']:7.0f} "
              f"{v['max_steps']:5d} {v['hit_cap']:6d} {v['ms_per_sample']:10.1f}"
              + (f"  ({v['canvas']})" if "canvas" in v else ""))
    capped = sum(v["hit_cap"] for v in result["levels"].values())
    if capped and result["halting"] != "fixed":
        print(f"note: {capped} sample(s) ran to the step cap without halting; their answers are the cap's, not the "
              "model's limit (raise --max-steps to see more)")
    print("wrote", ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(result))
    return 0


def _eval_compare(args, model, task, levels, max_steps, device) -> int:
    """``convrnn eval --compare learned,stable``: the policies and every fixed step count on one pass."""
    import json
    from pathlib import Path

    from .analysis import plots
    from .evaluate import compare, resolve_policy
    from .fileio import atomic_write_text
    names = [s.strip() for s in args.compare.split(",") if s.strip()]
    for name in names:
        resolve_policy(model, name)                      # a bad name fails before any data is made
    result = compare(model, task, levels, args.n, max_steps, {k: k for k in names}, seed=args.seed,
                     batch_size=args.batch_size, device=str(device), data=args.data, amp=args.amp,
                     progress=not args.no_progress)
    result["checkpoint"] = str(args.checkpoint)
    result.update(task.report_info())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "eval.json", json.dumps(result, indent=1))
    png = plots.plot_halting_comparison(result, out)
    print(f"{'level':>6} {'policy':>10} {'acc %':>7} {'mean':>7} {'median':>7} {'at cap':>6} {'fixed to match':>14} "
          f"{'compute':>8} | best fixed")
    for k, v in result["levels"].items():
        for name, p in v["policies"].items():
            match = p["fixed_steps_to_match"]
            ratio = f"{100 * p['compute_vs_fixed']:7.0f}%" if p["compute_vs_fixed"] is not None else "       -"
            print(f"{k:>6} {name:>10} {100 * p['accuracy']:7.1f} {p['mean_steps']:7.1f} {p['median_steps']:7.0f} "
                  f"{p['hit_cap']:6d} {match if match else '-':>14} {ratio} | {100 * v['best_fixed_accuracy']:.1f}% "
                  f"at {v['best_fixed_steps']}")
    for key, label in (("spearman_steps_vs_level", "the level"), ("spearman_steps_vs_sample_difficulty",
                                                                  f"each sample's {result.get('sample_difficulty')}")):
        for name, rho in (result.get(key) or {}).items():
            if rho is not None:
                print(f"Spearman of {name} steps with {label}: {rho:.3f}")
    print("wrote", out / "eval.json", png)
    return 0


def cmd_eval_mri(args) -> int:
    """PC-RNN / U-Net checkpoints against zero-filled (and compressed sensing with --cs) at each
    acceleration, volume-wise like fastMRI; figures of every iteration and scale."""
    from pathlib import Path

    from .checkpoint import load_model
    from .runtime import pick_device
    from .tasks.mri_recon import evaluate_reconstruction, phantom_test_set, report_table, write_mri_report
    device = pick_device(args.device)
    models = {}
    for ck in args.checkpoint:
        name = Path(ck).stem if Path(ck).suffix == ".safetensors" else Path(ck).name
        models[name if name not in models else f"{name}_{len(models)}"] = load_model(ck).to(device)
    data = args.data
    if data is None:      # phantom test volumes like the run's, from a seed no run trained or validated on
        run = _run_config(args.checkpoint[0])
        opts = run.get("data_kwargs", {})
        used = {c.get("seed", 0) + k for c in map(_run_config, args.checkpoint) for k in (0, 1_000_003)}
        if args.seed in used:
            raise ValueError(f"--seed {args.seed} would evaluate on phantoms a run trained or validated on "
                             f"(seeds {sorted(used)}); pick another seed")
        c = max(getattr(m.config, "coils", 1) for m in models.values())     # PC-RNN coils=1: single-coil files
        coils = opts.get("coils", c if c > 1 else 0)
        data = phantom_test_set(Path(args.out) / "data", 4 if args.n is None else args.n, args.seed,
                                size=args.size or opts.get("size", 64), slices=opts.get("slices", 16), coils=coils)
    accs = [a.strip() for a in args.accelerations.split(",") if a.strip()]
    its = _levels(args.iterations) if args.iterations else None
    result = evaluate_reconstruction(models, data, accs, seed=args.seed, mask_kind=args.mask_kind, iterations=its,
                                     cs_lambda=args.cs_lambda if args.cs else None, device=str(device),
                                     batch_size=args.batch_size, progress=not args.no_progress,
                                     mask_per_volume=args.mask_per_volume)
    result["checkpoints"] = [str(c) for c in args.checkpoint]
    paths = write_mri_report(result, models, args.out, device=str(device))
    print(report_table(result), end="")
    print("wrote", ", ".join(str(p) for p in paths))
    return 0


def _refuse_non_finite(module, inputs, out) -> None:
    """Forward hook of ``convrnn eval``: raise on NaN/inf in the model's answer."""
    import torch
    y = getattr(out, "output", out)
    if isinstance(y, torch.Tensor) and y.is_floating_point() and not bool(torch.isfinite(y).all()):
        bad = int((~torch.isfinite(y)).sum())
        raise FloatingPointError(f"the model's output holds {bad} non-finite values (NaN/inf) of {y.numel()}; "
                                 "the weights diverged or overflow at this input (try --amp none)")


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


def _default_halting(checkpoint, model=None) -> str:
    """The run's own halting (a fitted learned head), the policy it was trained for (ACT, PonderNet),
    the model's own default (a bundled model's learned head), else halting on a stable answer."""
    run = _run_config(checkpoint)
    own = getattr(getattr(model, "config", None), "default_halting", "fixed")
    return run.get("halting") or {"act": "act", "ponder": "ponder"}.get(run.get("loss")) or \
        (own if own != "fixed" else "stable")


def _bundled_names() -> set[str]:
    from .checkpoint import PRETRAINED_DIR
    return {p.stem for p in PRETRAINED_DIR.glob("*.safetensors")}


# ---- convrnn experiment ---------------------------------------------------------------------------

def cmd_fit_halting(args) -> int:
    """Second stage: fit a learned halting head on a trained run's frozen rollouts (fresh data at the
    given levels, from a seed the run never used) and write the model with it as its default policy."""
    import json
    from pathlib import Path

    import torch

    from .checkpoint import load_model, save_model
    from .config import TrainConfig
    from .fileio import atomic_write_text
    from .halting_training import attach, fit_dynamics_halting, record_rollouts
    from .tasks import get_task, task_class
    run = _run_config(args.checkpoint)
    if not run:
        raise ValueError(f"{args.checkpoint}: fit-halting needs a training run folder (model.safetensors + config.json)")
    model = load_model(args.checkpoint)
    feats, losses = [], []
    for level in _levels(args.levels):
        data_kwargs = task_class(run["task"]).options_at_level(run.get("data_kwargs", {}), level)
        task = get_task(run["task"], **data_kwargs)
        cfg = TrainConfig.from_dict({**run, "train_size": level, "n_train": args.n, "n_val": 1, "seed": args.seed,
                                     "data": None, "val_size": None, "data_kwargs": data_kwargs})
        (x, y), _ = task.datasets(cfg)
        if args.objective == "error":      # per step: 1 if the sample's answer is wrong (a whole maze, an image)
            def make_crit(xb, t=task):
                return lambda logits, target, reduce=False: (~t.correct(logits, target, xb)).float()
        else:                              # per step: the task's training loss
            def make_crit(xb, c=cfg, t=task):
                return t.criterion(xb, c)
        f, loss = record_rollouts(model, x, y, make_crit, args.max_steps)
        feats.append(f)
        losses.append(loss)
        print(f"level {level}: {len(x)} rollouts of {args.max_steps} steps recorded", flush=True)
    torch.manual_seed(args.seed)
    head = fit_dynamics_halting(torch.cat(feats), torch.cat(losses), lambda_p=args.lambda_p, beta=args.beta,
                                epochs=args.epochs, seed=args.seed)
    attach(model, head)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.safetensors", model, {"halting": "learned"})
    atomic_write_text(out / "config.json", json.dumps({**run, "halting": "learned", "halting_fit": {
        "from": str(args.checkpoint), "levels": args.levels, "n": args.n, "max_steps": args.max_steps,
        "seed": args.seed, "lambda_p": args.lambda_p, "beta": args.beta, "epochs": args.epochs,
        "objective": args.objective}}, indent=1))
    print(f"wrote {out}/model.safetensors (default halting: learned) and config.json")
    return 0


def _add_fit_halting_parser(sub) -> None:
    h = sub.add_parser("fit-halting", help="second stage: fit a learned halting head (PonderNet on answer dynamics) "
                                           "on a trained run's frozen rollouts")
    h.add_argument("checkpoint", help="training run folder (model.safetensors + config.json)")
    h.add_argument("--levels", required=True, help="difficulty levels to roll out, e.g. 9,14 (maze sizes, contour "
                                                   "lengths)")
    h.add_argument("--n", type=int, default=128, help="samples per level (default: %(default)s)")
    h.add_argument("--max-steps", type=int, default=60, help="rollout length M (default: %(default)s)")
    h.add_argument("--lambda-p", type=float, default=0.05, help="PonderNet geometric prior (default: %(default)s)")
    h.add_argument("--beta", type=float, default=0.01, help="KL weight (default: %(default)s)")
    h.add_argument("--epochs", type=int, default=40)
    h.add_argument("--objective", default="loss", choices=["loss", "error"],
                   help="what halting later must buy: the task loss (default) or the 0/1 error of the answer (halts "
                        "as soon as more steps stop fixing answers; used for adrnn_mazes with --lambda-p 0.2)")
    h.add_argument("--seed", type=int, default=777, help="data seed (not the run's)")
    h.add_argument("--out", required=True, help="output folder (model.safetensors + config.json)")
    h.set_defaults(fn=cmd_fit_halting)


def cmd_experiment(args) -> int:
    from .experiment import load_experiment, report_table, run_experiment
    exp = load_experiment(args.config, args.overrides)
    out = args.out or exp.out_dir
    result = run_experiment(exp, out, progress=not args.no_progress, log=lambda msg: print(msg, flush=True))
    print(report_table(result), end="")
    print(f"wrote {out}/experiment.json, report.md and figures")
    return 0


def _add_experiment_parser(sub) -> None:
    x = sub.add_parser("experiment", help="train and analyse a grid of conditions x seeds from one YAML config "
                                          "(report with error bars)")
    x.add_argument("config", help="experiment YAML or bundled name (feedback_dropout_digits, cells_digits, ...)")
    x.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0,1] base.epochs=2 analysis.n=200")
    x.add_argument("--out", default=None, help="output folder (default: the config's out_dir)")
    x.add_argument("--no-progress", action="store_true")
    x.set_defaults(fn=cmd_experiment)


# ---- convrnn analyze: robustness, geometry and neural predictivity of a classification run ----------------

def _analysis_data(args, n: int):
    """The first ``n`` held-out images and labels of the run's classification data (config.json's
    data_kwargs and data; scikit-learn's digits by default), or of ``--data``."""
    from .tasks.classification import ClassificationTask
    cfg = _run_config(args.checkpoint)
    if cfg.get("task", "classification") != "classification":
        raise ValueError(f"{args.checkpoint}: trained on task {cfg['task']!r}; analyze needs a classification run")
    return ClassificationTask(**cfg.get("data_kwargs", {})).eval_data(0, n, args.seed, args.data or cfg.get("data"))


def _predictivity_inputs(args):
    """``--responses``: .npy holding the responses, or .npz with ``responses`` and optional ``images``
    (stimuli, C, H, W; float in [0, 1] or uint8). Without images the stimuli are the first held-out images."""
    from pathlib import Path

    import numpy as np
    import torch
    p = Path(args.responses)
    shapes = "(stimuli, neurons, time bins) or (repetitions, stimuli, neurons, time bins)"
    if p.suffix not in (".npy", ".npz"):
        raise ValueError(f"--responses {p}: expected a .npy file or a .npz file with keys 'responses' [and 'images']")
    images = None
    if p.suffix == ".npz":
        from .fileio import check_npz_file
        check_npz_file(p)
        try:
            with np.load(p, allow_pickle=False) as z:
                if "responses" not in z:
                    raise ValueError(f"{p}: expected a key 'responses' {shapes} (and optional 'images' (stimuli, C, "
                                     f"H, W)); found keys {sorted(z.files)}")
                resp = z["responses"]
                images = z["images"] if "images" in z else None
        except ValueError as e:
            raise ValueError(str(e) if str(p) in str(e) else f"{p}: {e}") from None
    else:
        from .fileio import check_npy_file
        check_npy_file(p)
        try:
            resp = np.load(p, allow_pickle=False)
        except ValueError as e:           # e.g. numpy's allow_pickle hint for an object array
            raise ValueError(f"{p}: {e}") from None
    if resp.ndim not in (3, 4):
        raise ValueError(f"{p}: responses: expected shape {shapes}, got {resp.shape}")
    s = resp.shape[-3]
    if images is None:
        x, _ = _analysis_data(args, s)
        if len(x) < s:
            raise ValueError(f"{p}: responses have {s} stimuli but the held-out set has {len(x)} images; store the "
                             "stimuli in the .npz under 'images' (stimuli, C, H, W)")
        return x, resp
    if images.ndim != 4 or images.shape[0] != s:
        raise ValueError(f"{p}: images: expected shape (stimuli={s}, C, H, W) to match responses {resp.shape}, "
                         f"got {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images))
    return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()), resp


def cmd_analyze(args) -> int:
    from .checkpoint import load_model
    from .runtime import autocast, pick_device
    device = pick_device(args.device)
    model = load_model(args.checkpoint).to(device).eval()
    with autocast(args.amp, device):      # geometry's divergence always runs in float32
        return _analyze(args, model, device)


def _analyze(args, model, device) -> int:
    import json
    from pathlib import Path

    steps = args.steps or _run_config(args.checkpoint).get("steps") or model.config.steps
    areas = _levels(args.areas, str) if getattr(args, "areas", None) else None
    kind = args.analysis
    if kind == "predictivity":
        from .analysis.predictivity import predictivity_report, write_predictivity_report
        x, resp = _predictivity_inputs(args)
        res = predictivity_report(model, x, resp, steps, areas, method=args.method, folds=args.folds, seed=args.seed,
                                  batch_size=args.batch_size, pool=args.pool)
        res["checkpoint"] = str(args.checkpoint)
        paths = write_predictivity_report(res, args.out)
        print(f"{'bin':>4} {'area':>8} {'step':>5} {res['best_measure']:>13}")
        for b in res["best"]:
            v = b[res["best_measure"]]
            print(f"{b['bin']:>4} {b['area'] or '-':>8} {b['step'] or '-':>5} {'-' if v is None else f'{v:.3f}':>13}")
    elif kind == "geometry":
        from .analysis.geometry import geometry_report, write_geometry_report
        x, y = _analysis_data(args, args.n)
        probe = None if args.probe_steps == "all" else _levels(args.probe_steps)
        res = geometry_report(model, x, y, steps, areas, probe_steps=probe, folds=args.folds, eps=args.eps,
                              seed=args.seed, batch_size=args.batch_size, pool=args.pool)
        res["checkpoint"] = str(args.checkpoint)
        paths = write_geometry_report(res, args.out)
        fmt = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
        print(f"{'area':>8} {'PR first':>9} {'PR last':>8} {'probe last':>10} {'lyapunov':>9}")
        for n, r in res["areas"].items():
            probed = [v for v in r["probe_accuracy"] if v is not None]
            lam = res["divergence"]["areas"][n]["lyapunov"]
            print(f"{n:>8} {fmt(r['participation_ratio'][0]):>9} {fmt(r['participation_ratio'][-1]):>8} "
                  f"{fmt(probed[-1] if probed else None):>10} {fmt(lam):>9}")
    else:
        from .analysis import robustness as rb
        x, y = _analysis_data(args, args.n)
        if kind == "speed-accuracy":
            name, res = "speed_accuracy", rb.speed_accuracy(model, x, y, steps, args.batch_size)
            rows = [(f"step {t + 1}", a) for t, a in enumerate(res["accuracy"])]
        elif kind == "noise":
            res = rb.noise_robustness(model, x, y, args.kind, _levels(args.levels, float), steps, args.seed,
                                      args.batch_size)
            name, rows = f"noise_{args.kind}", [(f"level {v:g}", a[-1]) for v, a in zip(res["levels"], res["accuracy"])]
        else:
            res = rb.adversarial_accuracy(model, x, y, _levels(args.eps, float), args.attack, steps, args.pgd_steps,
                                          library=args.library, batch_size=args.batch_size)
            name, rows = f"adversarial_{args.attack}", [(f"eps {e:g}", a) for e, a in zip(res["eps"], res["accuracy"])]
        res["checkpoint"] = str(args.checkpoint)
        old = Path(args.out) / "robustness.json"          # results of other analyses in the same folder are kept
        try:
            results = json.loads(old.read_text()) if old.is_file() else {}
        except ValueError:
            results = {}
        results = {**(results if isinstance(results, dict) else {}), name: res}
        paths = rb.write_robustness_report(results, args.out)
        for label, a in rows:
            print(f"{label:>14} {100 * a:6.1f}%")
    print("wrote", ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(res))
    return 0


def _add_analyze_parser(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("checkpoint", help="run folder (model.safetensors + config.json) or a .safetensors file")
    common.add_argument("--data", default=None, help="data folder (default: the run's; digits need none)")
    common.add_argument("--n", type=int, default=200, help="held-out images to analyse (default: %(default)s)")
    common.add_argument("--steps", type=int, default=None, help="steps to unroll (default: the run's training steps)")
    common.add_argument("--out", default="analyze-out", help="output folder for JSON + PNG (default: %(default)s)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--batch-size", type=int, default=64)
    common.add_argument("--device", default="auto")
    common.add_argument("--amp", default="none", choices=["auto", "none", "bf16"],
                        help="bf16 autocast (auto: where the CPU/GPU runs bf16 natively); default fp32")
    common.add_argument("--json", action="store_true", help="also print the JSON result")
    a = sub.add_parser("analyze", help="robustness, geometry and neural predictivity of a classification run "
                                       "(JSON + PNG)")
    asub = a.add_subparsers(dest="analysis", required=True)
    asub.add_parser("speed-accuracy", parents=[common], help="accuracy per readout step (robustness.json)")
    nz = asub.add_parser("noise", parents=[common], help="accuracy per step under input noise (robustness.json)")
    nz.add_argument("--kind", default="gaussian", choices=["gaussian", "salt_pepper", "blur"])
    nz.add_argument("--levels", default="0,0.1,0.2,0.4", help="noise std / pixel fraction / blur sigma")
    adv = asub.add_parser("adversarial", parents=[common], help="accuracy under L-inf FGSM/PGD (robustness.json)")
    adv.add_argument("--attack", default="pgd", choices=["fgsm", "pgd"])
    adv.add_argument("--eps", default="0,0.01,0.03,0.1", help="L-inf radii (images in [0, 1])")
    adv.add_argument("--pgd-steps", type=int, default=10)
    adv.add_argument("--library", default="own", choices=["own", "foolbox"], help="own (no extra package) or Foolbox 3")
    geo = asub.add_parser("geometry", parents=[common], help="dimensionality, decoding, RSA and divergence per area "
                                                             "and step (geometry.json, geometry.png)")
    geo.add_argument("--eps", type=float, default=1e-3, help="L2 norm of the input perturbation (divergence)")
    geo.add_argument("--probe-steps", default="all", help="steps for the linear probe: 'all' or e.g. 1,5,10")
    pred = asub.add_parser("predictivity", parents=[common],
                           help="cross-validated prediction of recorded responses per area, step and time bin "
                                "(predictivity.json, predictivity.png)")
    pred.add_argument("--responses", required=True,
                      help=".npy (responses) or .npz (keys 'responses' and optional 'images' (stimuli, C, H, W)); "
                           "responses: (stimuli, neurons, time bins) or (repetitions, stimuli, neurons, time bins). "
                           "Without images the stimuli are the first held-out images (--n is ignored)")
    pred.add_argument("--method", default="ridge", choices=["ridge", "pls"])
    for p in (geo, pred):
        p.add_argument("--areas", default=None, help="comma-separated area names (default: all)")
        p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
        p.add_argument("--pool", type=int, default=None, help="average-pool area maps to POOL x POOL first")
    a.set_defaults(fn=cmd_analyze)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convrnn", description="Convolutional recurrent networks for vision.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of every error")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered cells and models").set_defaults(fn=cmd_list)

    d = sub.add_parser("demo", help="solve fresh mazes of growing size with the bundled model and adaptive halting")
    d.add_argument("--out", default="convrnn-demo", help="folder for the HTML report (default: %(default)s)")
    d.add_argument("--quick", action="store_true", help="a much smaller run (for tests)")
    d.add_argument("--device", default="auto")
    d.add_argument("--amp", default="none", choices=["auto", "none", "bf16"],
                   help="bf16 autocast: about 1.5x faster on AVX512-BF16 CPUs, but 'stable' halting then takes more "
                        "steps on large mazes (default: fp32)")
    d.set_defaults(fn=cmd_demo)

    g = sub.add_parser("data", help="generate a data set")
    gs = g.add_subparsers(dest="task", required=True)
    m = gs.add_parser("mazes", help="easy-to-hard layout mazes")
    m.add_argument("--size", type=int, required=True, help="maze size N (odd, >= 5); image side 2N+6")
    m.add_argument("--n", type=int, required=True, help="number of mazes")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="a folder (inputs.npy + solutions.npy) or a .npz file")
    m.add_argument("--force", action="store_true", help="replace the data of an existing --out")
    m.add_argument("--algorithm", default="dfs", choices=["dfs", "wilson"])
    m.add_argument("--start-anywhere", action="store_true", help="start cell need not be a dead end")
    m.add_argument("--cycles", type=float, default=0.0, help="percolation: chance to open each remaining wall")
    m.add_argument("--unique-path", action="store_true", help="with --cycles: redraw until the shortest path is unique")
    m.add_argument("--family", default=None, help="a named family instead of the options above: dfs, dfs_any, wilson, "
                   "cycles")
    m.add_argument("--float32", action="store_true",
                   help="store float32 inputs and int64 targets as easy-to-hard's files do (default: uint8 0/1, "
                        "4-8x smaller; loading gives float either way)")
    pf = gs.add_parser("pathfinder", help="PathFinder contour images (.npz or an LRA-style PNG folder)")
    pf.add_argument("--length", type=int, default=14, help="contour length in paddles (>= 3)")
    pf.add_argument("--preset", default="lra32", help="lra32 | lra64 | lra128 | lra256 | classic150")
    pf.add_argument("-n", "--n", type=int, required=True, help="number of images")
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--out", required=True, help="a .npz file or a folder (LRA layout: imgs/ + metadata/)")
    pf.add_argument("--force", action="store_true", help="replace the data of an existing --out")
    pf.add_argument("--format", default=None, choices=["npz", "lra"], help="default: npz for *.npz, else lra")
    pf.add_argument("--dense", action="store_true", help="also store the dense target (npz only)")
    pf.add_argument("--batch-size", type=int, default=1000, help="images per LRA batch folder")
    cl = gs.add_parser("clutter", help="cluttered, occluded, noisy digits (.npz or an ImageFolder of PNGs)")
    cl.add_argument("--level", type=int, default=3, help="difficulty 0 (a clean centred digit) .. 6 (default: %(default)s)")
    cl.add_argument("-n", "--n", type=int, required=True, help="number of images")
    cl.add_argument("--size", type=int, default=32, help="canvas side in px (default: %(default)s)")
    cl.add_argument("--seed", type=int, default=0)
    cl.add_argument("--out", required=True, help="a .npz file or a folder (ImageFolder: <class>/<index>.png)")
    cl.add_argument("--format", default=None, choices=["npz", "folder"], help="default: npz for *.npz, else folder")
    cl.add_argument("--force", action="store_true", help="replace the data of an existing --out")
    for knob, kind, what in (("clutter", int, "whole distractor digits under the target"),
                             ("debris", int, "digit fragments scattered under the target"),
                             ("occlusion", float, "fraction of the target's ink under grey occluders"),
                             ("noise", float, "Gaussian pixel noise std"),
                             ("jitter", float, "target affine jitter, 0..1")):
        cl.add_argument(f"--{knob}", type=kind, default=None, help=f"{what} (default: the level's)")
    mr = gs.add_parser("mri", help="phantom MRI volumes written in the fastMRI h5 layout")
    mr.add_argument("--n-volumes", type=int, required=True)
    mr.add_argument("--out", required=True, help="output folder (one .h5 file per volume)")
    mr.add_argument("--force", action="store_true", help="replace the data of an existing --out")
    mr.add_argument("--slices", type=int, default=16)
    mr.add_argument("--size", type=int, default=128, help="image side in pixels")
    mr.add_argument("--coils", type=int, default=0, help="0 = single-coil, N = N-coil with smooth coil maps")
    mr.add_argument("--seed", type=int, default=0)
    mr.add_argument("--undersample", default=None, choices=["4x", "8x"],
                    help="write test-style files: masked k-space plus the mask, no targets")
    g.set_defaults(fn=cmd_data)

    t = sub.add_parser("train", help="train from a YAML config (a path or a bundled config name)")
    t.add_argument("config", help="YAML file or bundled config name (e.g. mazes_cpu, mazes_mix_cpu, pathfinder_cpu)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=3 model_kwargs.width=32")
    t.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoint")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint over difficulty levels (JSON + PNG plots)")
    e.add_argument("checkpoint", nargs="+",
                   help="checkpoint folder, .safetensors file, or a bundled model name (--task mri: one or more)")
    e.add_argument("--task", default="mazes", choices=["mazes", "pathfinder", "classification", "clutter", "mri"])
    e.add_argument("--preset", default=None, help="PathFinder canvas preset (default: the training run's, else lra32; "
                   "lra32 draws lengths over 18 on lra32_48 and over 30 on lra32_64, with the same paddles)")
    e.add_argument("--sizes", default="9,13,19,33,59", help="maze sizes (default: %(default)s)")
    e.add_argument("--family", default="dfs", help="maze family: dfs (easy-to-hard: the start a dead end), dfs_any "
                   "(start anywhere), wilson (uniform spanning tree), cycles (10%% of walls opened, unique shortest "
                   "path) (default: %(default)s)")
    e.add_argument("--lengths", default="9,14,18,21,24", help="contour lengths (pathfinder)")
    e.add_argument("--noise", default="0,0.1,0.2,0.3", help="Gaussian noise levels (classification)")
    e.add_argument("--levels", default="0,1,2,3,4,5,6", help="difficulty levels (clutter; default: %(default)s)")
    e.add_argument("--n", type=int, default=None, help="samples per level (default 100); mri: phantom test volumes "
                   "(default 4)")
    e.add_argument("--accelerations", default="4x,8x", help="mri: mask settings (default: %(default)s)")
    e.add_argument("--mask-kind", default="random", choices=["random", "equispaced"], help="mri mask kind")
    e.add_argument("--mask-per-volume", action="store_true",
                   help="mri: one mask per volume, as fastMRI's validation does (default: one per slice)")
    e.add_argument("--iterations", default=None,
                   help="mri: also sweep PC-RNN iterations per module, e.g. 1,2,3,5,8")
    e.add_argument("--cs", action="store_true", help="mri: add the compressed-sensing baseline (sigpy)")
    e.add_argument("--cs-lambda", type=float, default=0.003,
                   help="mri: CS L1-wavelet weight, on k-space scaled to a zero-filled max of 1 (default: %(default)s, "
                   "the best of 0.001-0.03 on validation phantoms)")
    e.add_argument("--size", type=int, default=None, help="mri: phantom test image side (default: the run's)")
    e.add_argument("--max-steps", type=int, default=None, help="iteration cap (default: grows with the level: mazes "
                   "max(4x training steps, 2x the cells), PathFinder max(4x training steps, 4x the length))")
    e.add_argument("--halting", default=None,
                   help="fixed | act | ponder | confidence | convergence | stable | learned (default: the run's fitted "
                        "head, act or ponder when the run was trained with it, else stable)")
    e.add_argument("--data", default=None, help="evaluate on this file/folder instead of fresh samples (mri: a "
                   "folder of fastMRI h5 volumes, e.g. knee singlecoil_val)")
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--amp", default="none", choices=["auto", "none", "bf16"],
                   help="bf16 autocast (auto: where the CPU/GPU runs bf16 natively); default fp32, whose halting "
                        "steps are reproducible")
    e.add_argument("--out", default="eval-out", help="report folder; a previous report there is replaced "
                   "(default: %(default)s)")
    e.add_argument("--no-curves", action="store_true", help="skip accuracy-vs-step curves (faster)")
    e.add_argument("--compare", default=None, help="comma-separated halting policies to run side by side with every "
                   "fixed step count on one pass, e.g. learned,stable (reports each one's accuracy, steps, the fixed "
                   "count that matches it and its compute against that count)")
    e.add_argument("--curve-steps", type=int, default=None, help="run the fixed-step curve (and its best fixed step "
                   "count) up to this many steps only (default: the cap)")
    e.add_argument("--json", action="store_true", help="also print the JSON result")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=cmd_eval)
    _add_experiment_parser(sub)
    _add_analyze_parser(sub)
    _add_fit_halting_parser(sub)
    from .search import add_search_parsers      # convrnn search, convrnn search-report (optuna imported on use)
    add_search_parsers(sub)
    return p


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if not isinstance(e, MemoryError) else f"out of memory ({text}); try a smaller --batch-size or --n"


def _expected_errors() -> tuple:
    """What a user's input or machine can cause: shown as one line. Anything else is a bug: traceback."""
    errors = [ValueError, OSError, FloatingPointError, ImportError, MemoryError]
    try:
        from PIL import Image
        errors.append(Image.DecompressionBombError)
    except ImportError:  # pragma: no cover - Pillow is optional
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if "--debug" in extra:         # also accepted after the command's name
        args.debug, extra = True, [a for a in extra if a != "--debug"]
    if extra:          # key=value overrides may follow options: convrnn train cfg --resume epochs=3
        if getattr(args, "command", None) in ("train", "search") and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"convrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:  # user errors, the library's own (ValueError/OSError subclasses): one line
        if args.debug:
            raise
        print(f"convrnn {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
