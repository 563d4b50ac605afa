# Over 600 lines on purpose: configs, runs, per-run analysis, aggregation and report share one result schema.
"""Multi-condition, multi-seed experiments from one YAML config: train, analyse, aggregate, report.

An experiment config (:class:`ExperimentConfig`) holds a ``base`` training config (the keys of
:class:`~convrnn.config.TrainConfig`), named ``conditions`` (each a dict of overrides of ``base``:
dotted keys reach into dicts, ``model_kwargs.dropout: 0.0``, as in ``convrnn train ... key=value``;
a plain key replaces the whole value), a list of ``seeds`` and ``analysis`` settings
(:class:`AnalysisSettings`). For every condition x seed, :func:`run_experiment`

1. trains through :func:`convrnn.train.train` into ``OUT/runs/<condition>/seed<seed>/`` — a run
   that already has ``model.safetensors`` is skipped, one with only a checkpoint is resumed
   (``resume=True``), so re-running the same command continues where it stopped; a run folder made
   with a different config is refused;
2. loads the trained model and measures, on the task's held-out (validation) images — the training
   loop never selects on them, it only logs their accuracy:

   * ``accuracy``: clean accuracy of the final readout step;
   * ``acc_hardest``: with ``levels`` (the task's difficulty levels, e.g. clutter 0..6 or digit noise
     std), final-step accuracy on ``level_n`` fresh images per level (``task.eval_data``, seeded by
     the analysis seed + 7, the same images for every run); the metric is the last level's, the
     curve ``levels`` holds them all (``n/a`` without levels);
   * ``speed_auc``: :func:`~convrnn.analysis.robustness.speed_accuracy`'s AUC, the mean clean
     accuracy over readout steps 1..T;
   * ``noise_auc``: final-step accuracy against the noise level
     (:func:`~convrnn.analysis.robustness.noise_robustness`, Gaussian by default), integrated with
     the trapezoid rule and divided by the level range, so it lies in [0, 1];
   * ``adv_acc``: final-step accuracy under an L-inf attack (FGSM or PGD through every unrolled
     step) at the fixed ``eps`` (:func:`~convrnn.analysis.robustness.adversarial_accuracy`);
   * ``dim``: participation ratio (:func:`~convrnn.analysis.geometry.participation_ratio`) of
     ``area``'s output over the images at the final step (for greco_ff/fb, ``L2``, the area where
     feedback is integrated);
   * ``lyapunov``: the finite-time Lyapunov exponent of that area
     (:func:`~convrnn.analysis.geometry.trajectory_divergence`), > 0 when small input perturbations
     grow over the steps;

   and caches them in the run folder (``analysis.json``, recomputed only when the analysis
   settings change);
3. aggregates over seeds: mean, sample standard deviation (ddof = 1) and a 95% confidence interval
   for the mean from Student's t distribution, ``mean ± t(0.975, n-1) · sd / sqrt(n)`` (``null``
   for a single seed), and writes ``experiment.json`` (config, per-seed values and curves,
   aggregates, library versions), ``report.md`` and the figures ``metrics.png`` (a bar per
   condition and metric, error bars ± sd, one dot per seed), ``robustness.png`` (accuracy against
   noise level and against readout step, mean ± sd shaded), ``divergence.png`` and, with levels,
   ``levels.png`` and a table of accuracy by level.

``equal_params`` ({reference, knob, tolerance}) gives every condition the same parameter budget:
each condition's ``model_kwargs[knob]`` (default ``width``) is set by :func:`match_param_count`
so its parameter count is within ``tolerance`` of the ``reference`` condition's (or of an int
``params``).
"""
from __future__ import annotations

import copy
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .analysis.plots import pyplot, save_figure
from .config import set_dotted
from .errors import DictConfig, check_choice, check_int, check_keys, check_number, check_positive_int
from .fileio import atomic_write_text

__all__ = ["ExperimentConfig", "AnalysisSettings", "METRICS", "load_experiment", "run_experiment",
           "summarize", "t_quantile_975", "count_params", "match_param_count", "run_configs", "report_table",
           "write_experiment_report"]

#: bumped when a metric's definition changes, so cached per-run analyses are recomputed
ANALYSIS_VERSION = 2

#: metric key -> (column header, description)
METRICS = {
    "accuracy": ("accuracy", "clean accuracy, final readout step"),
    "acc_hardest": ("hardest-level acc.", "final-step accuracy on fresh images of the hardest analysis level "
                    "(analysis.levels; n/a without)"),
    "speed_auc": ("speed-acc. AUC", "mean clean accuracy over readout steps 1..T"),
    "noise_auc": ("noise AUC", "final-step accuracy vs noise level, normalised area"),
    "adv_acc": ("adv. accuracy", "final-step accuracy under the attack at the fixed eps"),
    "dim": ("dimensionality (PR)", "participation ratio of the area's output at the final step"),
    "lyapunov": ("Lyapunov exp.", "finite-time Lyapunov exponent of the area (per step)"),
}


# --------------------------------------------------------------------------- configs

@dataclass
class AnalysisSettings(DictConfig):
    """What is measured on the held-out images after training (see the module docstring)."""

    _what = "experiment analysis"

    n: int | None = None              # held-out images analysed (None: all of them)
    steps: int | None = None          # readout steps (None: the run's training steps)
    batch_size: int = 128
    noise_kind: str = "gaussian"      # gaussian | salt_pepper | blur
    noise_levels: list = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    attack: str = "fgsm"              # fgsm | pgd
    eps: float = 0.05                 # L-inf radius of the attack
    pgd_steps: int = 10
    rel_stepsize: float = 0.25
    attack_library: str = "own"       # own | foolbox
    attack_n: int | None = None       # images attacked (None: the same n)
    area: str = "L2"                  # area for dimensionality and divergence
    divergence_eps: float = 1e-3      # L2 norm of the input perturbation
    seed: int = 0                     # noise draws and perturbation directions (the same for every run)
    amp: str = "none"                 # none | bf16 | auto: autocast for the analyses (divergence stays fp32)
    levels: list | None = None        # task difficulty levels: final-step accuracy on fresh images at each
    level_n: int = 200                # fresh images per level

    def __post_init__(self):
        from .analysis.robustness import ATTACKS, LIBRARIES, NOISE_KINDS
        for k in ("n", "steps", "attack_n"):
            if getattr(self, k) is not None:
                check_positive_int(f"experiment analysis: {k}", getattr(self, k))
        for k in ("batch_size", "pgd_steps"):
            check_positive_int(f"experiment analysis: {k}", getattr(self, k))
        for k, allowed in (("noise_kind", NOISE_KINDS), ("attack", ATTACKS), ("attack_library", LIBRARIES)):
            check_choice(f"experiment analysis: {k}", getattr(self, k), allowed)
        lv = self.noise_levels
        if not isinstance(lv, (list, tuple)) or len(lv) < 2 or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in lv) or \
                any(b <= a for a, b in zip(lv, lv[1:])):
            raise ValueError(f"experiment analysis: noise_levels must be at least two increasing numbers >= 0, "
                             f"got {lv!r}")
        self.noise_levels = [float(v) for v in lv]
        for k in ("eps", "divergence_eps", "rel_stepsize"):
            setattr(self, k, float(check_number(f"experiment analysis: {k}", getattr(self, k), 0, min_open=True)))
        from .runtime import AMP_CHOICES
        check_choice("experiment analysis: amp", self.amp, AMP_CHOICES)
        if not isinstance(self.area, str):
            raise ValueError(f"experiment analysis: area must be an area name, got {self.area!r}")
        check_int("experiment analysis: seed", self.seed)
        check_positive_int("experiment analysis: level_n", self.level_n)
        if self.levels is not None and (not isinstance(self.levels, (list, tuple)) or not self.levels):
            raise ValueError(f"experiment analysis: levels must be a non-empty list of the task's difficulty levels, "
                             f"got {self.levels!r}")


@dataclass
class ExperimentConfig(DictConfig):
    """A grid of training conditions x seeds and the analyses to run on each trained model."""

    _what = "experiment config"

    name: str = "experiment"
    base: dict = field(default_factory=dict)          # a TrainConfig dict
    conditions: dict = field(default_factory=dict)    # name -> overrides of base (dotted keys)
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    analysis: dict = field(default_factory=dict)      # AnalysisSettings keys
    equal_params: dict | None = None                  # {reference | params, knob, tolerance}
    out_dir: str = "runs/experiment"

    def __post_init__(self):
        if not isinstance(self.base, dict):
            raise ValueError(f"experiment config: base must be a mapping of training config keys, got {self.base!r}")
        if not isinstance(self.conditions, dict) or not self.conditions:
            raise ValueError("experiment config: conditions must be a non-empty mapping of name -> overrides")
        for name, ov in self.conditions.items():
            if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
                raise ValueError(f"experiment config: condition name {name!r} must be a non-empty string without '/'")
            if ov is not None and not isinstance(ov, dict):
                raise ValueError(f"experiment config: condition {name!r} must be a mapping of overrides, got {ov!r}")
        self.conditions = {k: dict(v or {}) for k, v in self.conditions.items()}
        if not isinstance(self.seeds, (list, tuple)) or not self.seeds or \
                not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds) or \
                len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"experiment config: seeds must be a non-empty list of distinct ints >= 0, got {self.seeds!r}")
        self.seeds = list(self.seeds)
        if not isinstance(self.analysis, dict):
            raise ValueError(f"experiment config: analysis must be a mapping, got {self.analysis!r}")
        self.settings()                     # validates the analysis keys now
        if self.equal_params is not None:
            ep = self.equal_params
            if not isinstance(ep, dict):
                raise ValueError(f"experiment config: equal_params must be a mapping, got {ep!r}")
            check_keys("experiment equal_params", ep, ("reference", "params", "knob", "tolerance"))
            if ("reference" in ep) == ("params" in ep):
                raise ValueError("experiment config: equal_params needs exactly one of reference (a condition "
                                 "name) or params (a parameter count)")
            if "reference" in ep and ep["reference"] not in self.conditions:
                raise ValueError(f"experiment config: equal_params.reference {ep['reference']!r} is not a condition; "
                                 f"conditions: {', '.join(self.conditions)}")
            if "params" in ep:
                check_positive_int("experiment equal_params: params", ep["params"])
            check_number("experiment config: equal_params.tolerance", ep.get("tolerance", 0.05), 0, 1,
                         min_open=True, max_open=True)

    def settings(self) -> AnalysisSettings:
        return AnalysisSettings.from_dict(self.analysis)


def load_experiment(path, overrides=()) -> ExperimentConfig:
    """Read an experiment YAML (a path, or the name of a bundled config in ``convrnn/configs``) and
    apply ``key=value`` overrides (dotted keys reach into dicts: ``base.epochs=2``, ``seeds=[0,1]``)."""
    from .config import load_yaml
    return ExperimentConfig.from_dict(load_yaml(path, overrides, "experiment config"))


# --------------------------------------------------------------------------- equal parameter budget

def count_params(model: str, model_kwargs: dict | None = None) -> int:
    """Number of parameters of ``create_model(model, **model_kwargs)`` (built on the meta device, so
    nothing is allocated)."""
    from .models import create_model
    with torch.device("meta"):
        m = create_model(model, **(model_kwargs or {}))
    return int(sum(p.numel() for p in m.parameters()))


def match_param_count(model: str, model_kwargs: dict | None, target: int, knob: str = "width",
                      tolerance: float = 0.05, lo: float = 1 / 64, hi: float = 16.0) -> tuple[float, int]:
    """The value of ``model_kwargs[knob]`` (a width multiplier; rounded to 4 decimals) whose
    parameter count is closest to ``target``, and that count.

    The count is a non-decreasing step function of the width (channels are rounded), so bisection
    finds the first width w* whose count reaches ``target``; the widths just above and just below
    w* are the two candidates. Raises ``ValueError`` when the best is more than ``tolerance``
    (relative) away from ``target``.
    """
    kw = dict(model_kwargs or {})
    target = check_positive_int("match_param_count: target", target)

    def params(w):
        return count_params(model, {**kw, knob: w})

    if params(hi) < target or params(lo) > target:
        raise ValueError(f"{model}: no {knob} in [{lo:g}, {hi:g}] gives {target} parameters "
                         f"({knob}={lo:g}: {params(lo)}, {knob}={hi:g}: {params(hi)})")
    a, b = lo, hi                     # params(a) <= target <= params(b) ... find the jump at or above target
    for _ in range(50):
        m = 0.5 * (a + b)
        if params(m) >= target:
            b = m
        else:
            a = m
        if b - a < 1e-6:
            break
    best = None
    for w in (round(b + 1e-4, 4), round(a - 1e-4, 4), round(b, 4)):
        if w <= 0:
            continue
        n = params(w)
        err = abs(n - target) / target
        if best is None or err < best[2]:
            best = (w, n, err)
    w, n, err = best
    if err > tolerance:
        raise ValueError(f"{model} with {kw}: the closest {knob} ({w}) gives {n} parameters, {100 * err:.1f}% away "
                         f"from {target} (tolerance {100 * tolerance:.1f}%); raise equal_params.tolerance")
    return w, n


# --------------------------------------------------------------------------- statistics

# Student's t 0.975 quantiles for 1..30 degrees of freedom
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a table up to 30, then the
    Cornish-Fisher expansion around the normal quantile, accurate to ~1e-5 there)."""
    df = check_positive_int("t_quantile_975: df", df)
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def summarize(values) -> dict:
    """``{"n", "mean", "sd", "ci95", "values"}`` of the finite numbers in ``values``: ``sd`` is the
    sample standard deviation (ddof = 1) and ``ci95`` the t-interval ``mean ± t(0.975, n-1) sd /
    sqrt(n)``; both ``None`` for n < 2 (and everything ``None`` for n = 0)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95": None, "values": list(values)}
    mean = float(np.mean(vals))
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "ci95": None, "values": list(values)}
    sd = float(np.std(vals, ddof=1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "values": list(values)}


def _curve_stats(curves: list) -> dict:
    a = np.asarray(curves, dtype=np.float64)
    return {"mean": a.mean(0).tolist(), "sd": (a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1:])).tolist()}


def _trapezoid_auc(levels, acc) -> float:
    x, y = np.asarray(levels, dtype=np.float64), np.asarray(acc, dtype=np.float64)
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2 / (x[-1] - x[0]))


# --------------------------------------------------------------------------- runs

def run_configs(exp: ExperimentConfig, out_dir=None) -> tuple[dict, dict]:
    """Every run's :class:`~convrnn.config.TrainConfig` (``{condition: {seed: cfg}}``) and per
    condition the resolved overrides and parameter count (``{condition: {"overrides", "params"}}``).
    Validates every config and builds every model (on the meta device), so bad keys fail before
    anything is trained."""
    from .config import TrainConfig
    out = Path(out_dir or exp.out_dir)
    resolved = {}
    for name, ov in exp.conditions.items():
        d = copy.deepcopy(exp.base)
        for k, v in ov.items():
            set_dotted(d, k, v, what=f"condition {name!r}: override")
        resolved[name] = d
    ep = exp.equal_params
    if ep is not None:
        knob, tol = ep.get("knob", "width"), ep.get("tolerance", 0.05)
        if "params" in ep:
            target = ep["params"]
        else:
            r = resolved[ep["reference"]]
            target = _count(ep["reference"], r)
        for name, d in resolved.items():
            if "reference" in ep and name == ep["reference"]:
                continue
            try:
                w, _ = match_param_count(d.get("model"), d.get("model_kwargs", {}), target, knob, tol)
            except (ValueError, TypeError) as e:
                raise ValueError(f"condition {name!r}: {e}") from None
            d.setdefault("model_kwargs", {})[knob] = w
    cfgs, info = {}, {}
    for name, d in resolved.items():
        cfgs[name] = {}
        for seed in exp.seeds:
            try:
                cfgs[name][seed] = TrainConfig.from_dict({**d, "seed": seed,
                                                          "out_dir": str(out / "runs" / name / f"seed{seed}")})
            except (ValueError, TypeError) as e:
                raise ValueError(f"condition {name!r}: {e}") from None
        info[name] = {"train_config": {k: v for k, v in d.items()}, "params": _count(name, d),
                      "model_kwargs": dict(d.get("model_kwargs", {}))}
    return cfgs, info


def _count(name, d) -> int:
    try:
        return count_params(d.get("model", "dtnet_recall_mazes"), d.get("model_kwargs", {}))
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"condition {name!r}: cannot build the model: {e}") from None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _train_run(cfg, progress: bool, log) -> str:
    """Train (or resume, or skip) one run; returns what was done."""
    from .checkpoint import resolve_checkpoint
    from .train import _resumable, train
    out = Path(cfg.out_dir)
    old = _load_json(out / "config.json")
    if old is not None:
        from .config import TrainConfig
        try:
            same = _resumable(TrainConfig.from_dict(old)) == _resumable(cfg)
        except (ValueError, TypeError):
            same = False
        if not same:
            raise ValueError(f"{out} holds a run made with a different training config; delete it or choose "
                             "another out_dir")
    if (out / "model.safetensors").is_file():
        return "skipped (trained)"
    resume = resolve_checkpoint(out / "checkpoint") is not None
    log(f"{'resuming' if resume else 'training'} {out}")
    t0 = time.perf_counter()
    train(cfg, resume=resume, progress=progress)
    return f"{'resumed' if resume else 'trained'} in {time.perf_counter() - t0:.1f} s"


def _heldout(cfg, cache: dict):
    """The task's held-out (validation) images for ``cfg`` (cached per data config)."""
    from .tasks import get_task
    key = json.dumps([cfg.task, cfg.data, cfg.data_kwargs], sort_keys=True, default=str)
    if key not in cache:
        try:
            _, (x, y) = get_task(cfg.task, **cfg.data_kwargs).datasets(cfg)
        except (OSError, ValueError) as e:
            hint = ""
            if str(cfg.data_kwargs.get("dataset", "")).startswith("cifar"):
                hint = (" — CIFAR needs the 'python version' files: download cifar-10-python.tar.gz from "
                        "https://www.cs.toronto.edu/~kriz/cifar.html, extract it and point base.data (or "
                        "`base.data=PATH` on the command line) at the cifar-10-batches-py folder")
            raise ValueError(f"cannot load the {cfg.task} data (data={cfg.data!r}, data_kwargs={cfg.data_kwargs}): "
                             f"{e}{hint}") from None
        cache[key] = (x, y)
    return cache[key]


def _analyse(model, x, y, steps: int, s: AnalysisSettings) -> dict:
    """Every metric of one trained model on held-out ``x, y`` (under ``s.amp`` autocast)."""
    from .runtime import autocast
    with autocast(s.amp, next(model.parameters()).device):
        return _metrics(model, x, y, steps, s)


def _metrics(model, x, y, steps: int, s: AnalysisSettings) -> dict:
    from .analysis.geometry import collect_area_outputs, participation_ratio, trajectory_divergence
    from .analysis.robustness import adversarial_accuracy, noise_robustness, speed_accuracy
    t0 = time.perf_counter()
    n = min(s.n or len(x), len(x))
    x, y = x[:n], y[:n]
    sa = speed_accuracy(model, x, y, steps, s.batch_size)
    nr = noise_robustness(model, x, y, s.noise_kind, s.noise_levels, steps, s.seed, s.batch_size)
    noise_final = [a[-1] for a in nr["accuracy"]]
    na = min(s.attack_n or n, n)
    adv = adversarial_accuracy(model, x[:na], y[:na], [s.eps], s.attack, steps, s.pgd_steps, s.rel_stepsize,
                               s.attack_library, s.batch_size)
    acts = collect_area_outputs(model, x, steps, [s.area], s.batch_size)[s.area]
    dims = [participation_ratio(acts[t]) for t in range(steps)]
    del acts
    div = trajectory_divergence(model, x, steps, s.divergence_eps, [s.area], s.seed, s.batch_size)["areas"][s.area]
    return {"n": n, "attack_n": na, "steps": steps,
            "metrics": {"accuracy": sa["final"], "speed_auc": sa["auc"],
                        "noise_auc": _trapezoid_auc(s.noise_levels, noise_final), "adv_acc": adv["accuracy"][0],
                        "dim": dims[-1], "lyapunov": div["lyapunov"]},
            "curves": {"speed": sa["accuracy"], "noise": noise_final, "noise_steps": nr["accuracy"],
                       "adv_steps": adv["step_accuracy"][0], "dim": dims, "divergence": div["distance"]},
            "seconds": time.perf_counter() - t0}


def _level_accuracy(model, cfg, steps: int, s: AnalysisSettings, cache: dict):
    """Final-step accuracy on ``s.level_n`` fresh images at each of ``s.levels`` (the task's ``eval_data``,
    seeded by the analysis seed, the same images for every run, made once per data config in ``cache``):
    (accuracy at the last level, the list); (None, []) without levels."""
    if not s.levels:
        return None, []
    from .analysis.robustness import speed_accuracy
    from .runtime import autocast
    from .tasks import get_task
    key = json.dumps(["levels", cfg.task, cfg.data_kwargs, s.levels, s.level_n, s.seed], sort_keys=True, default=str)
    if key not in cache:
        task = get_task(cfg.task, **cfg.data_kwargs)
        cache[key] = [task.eval_data(level, s.level_n, s.seed + 7) for level in s.levels]
    with autocast(s.amp, next(model.parameters()).device):
        accs = [speed_accuracy(model, x, y, steps, s.batch_size)["final"] for x, y in cache[key]]
    return accs[-1], accs


def _analyse_run(cfg, settings: AnalysisSettings, data_cache: dict, log) -> tuple[dict, str]:
    from .analysis.geometry import json_ready
    from .checkpoint import load_model
    out = Path(cfg.out_dir)
    path = out / "analysis.json"
    want = {**settings.to_dict(), "version": ANALYSIS_VERSION}
    old = _load_json(path)
    model_file = out / "model.safetensors"
    stamp = model_file.stat().st_mtime_ns
    if old is not None and old.get("settings") == want and old.get("model_mtime_ns") == stamp:
        return old, "cached"
    x, y = _heldout(cfg, data_cache)
    model = load_model(model_file).eval()
    if settings.area not in getattr(model, "areas", {}):
        raise ValueError(f"{out}: analysis.area {settings.area!r} is not an area of the model; areas: "
                         f"{', '.join(getattr(model, 'areas', {}))}")
    steps = settings.steps or cfg.steps
    res = _analyse(model, x, y, steps, settings)
    res["metrics"]["acc_hardest"], res["curves"]["levels"] = _level_accuracy(model, cfg, steps, settings,
                                                                              data_cache)
    res = json_ready({"settings": want, "model_mtime_ns": stamp, **res})
    atomic_write_text(path, json.dumps(res, indent=1) + "\n")
    return res, f"analysed in {res['seconds']:.1f} s"


def _train_seconds(out: Path):
    import csv
    try:
        with open(out / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        return float(rows[-1]["seconds"]) if rows else None
    except (OSError, ValueError, KeyError):
        return None


def _versions() -> dict:
    import convrnn
    v = {"convrnn": convrnn.__version__, "python": sys.version.split()[0], "torch": torch.__version__,
         "numpy": np.__version__, "platform": platform.platform(), "machine": platform.machine(),
         "torch_threads": torch.get_num_threads()}
    for mod in ("sklearn", "matplotlib", "foolbox"):
        m = sys.modules.get(mod)
        if m is not None:
            v[mod] = getattr(m, "__version__", "?")
    return v


def run_experiment(exp: ExperimentConfig, out_dir=None, progress: bool = False, log=print) -> dict:
    """Train and analyse every condition x seed of ``exp`` (skipping finished work), aggregate over
    seeds and write the report into ``out_dir`` (default ``exp.out_dir``). Returns the result dict
    that is written to ``experiment.json``."""
    out = Path(out_dir or exp.out_dir)
    settings = exp.settings()
    cfgs, info = run_configs(exp, out)
    # check the data and the analysed area before training anything
    data_cache: dict = {}
    for name, by_seed in cfgs.items():
        cfg = next(iter(by_seed.values()))
        _heldout(cfg, data_cache)
        from .models import create_model
        with torch.device("meta"):
            areas = list(getattr(create_model(cfg.model, **cfg.model_kwargs), "areas", {}))
        if settings.area not in areas:
            raise ValueError(f"condition {name!r}: analysis.area {settings.area!r} is not an area of {cfg.model}; "
                             f"areas: {', '.join(areas) or 'none (not a multi-area network)'}")
    out.mkdir(parents=True, exist_ok=True)
    runs: dict = {}
    total = sum(len(v) for v in cfgs.values())
    k = 0
    for name, by_seed in cfgs.items():
        runs[name] = {}
        for seed, cfg in by_seed.items():
            k += 1
            did = _train_run(cfg, progress, log)
            res, how = _analyse_run(cfg, settings, data_cache, log)
            log(f"[{k}/{total}] {name} seed {seed}: {did}; {how}; " +
                ", ".join(f"{m} {res['metrics'][m]:.4g}" if res["metrics"][m] is not None else f"{m} nan"
                          for m in METRICS))
            runs[name][str(seed)] = {**res, "train_seconds": _train_seconds(Path(cfg.out_dir)),
                                     "out_dir": str(Path(cfg.out_dir))}
    result = _aggregate(exp, settings, info, runs)
    write_experiment_report(result, out)
    return result


def _aggregate(exp, settings, info, runs) -> dict:
    agg = {}
    for name, by_seed in runs.items():
        rs = list(by_seed.values())
        agg[name] = {"params": info[name]["params"],
                     "metrics": {m: summarize([r["metrics"][m] for r in rs]) for m in METRICS},
                     "curves": {c: _curve_stats([r["curves"][c] for r in rs])
                                for c in ("speed", "noise", "dim", "divergence", "levels")}}
    from .analysis.geometry import json_ready
    return json_ready({
        "name": exp.name, "config": exp.to_dict(), "analysis": settings.to_dict(),
        "ci_method": "Student t: mean ± t(0.975, n-1) * sd / sqrt(n), sd with ddof=1",
        "metrics": {m: d for m, (_, d) in METRICS.items()},
        "conditions": {n: {"params": info[n]["params"], "model_kwargs": info[n]["model_kwargs"],
                           "train_config": info[n]["train_config"]} for n in info},
        "seeds": exp.seeds, "runs": runs, "aggregate": agg, "versions": _versions(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    })


# --------------------------------------------------------------------------- report

def _fmt(s: dict, digits: int = 3) -> str:
    if s["mean"] is None:
        return "n/a"
    if s["sd"] is None:
        return f"{s['mean']:.{digits}f} (n=1)"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} ({s['n']})"


def report_table(result: dict) -> str:
    """The markdown table: a row per condition, mean ± sd (n seeds) per metric."""
    a = result["analysis"]
    heads = {**{m: h for m, (h, _) in METRICS.items()},
             "adv_acc": f"{a['attack'].upper()} acc. (ε={a['eps']:g})",
             "dim": f"PR {a['area']}", "lyapunov": f"λ {a['area']}"}
    lines = ["| condition | params | " + " | ".join(heads[m] for m in METRICS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |"]
    for name, g in result["aggregate"].items():
        digits = {"dim": 2, "lyapunov": 3}
        lines.append(f"| {name} | {g['params']:,} | " +
                     " | ".join(_fmt(g["metrics"][m], digits.get(m, 3)) for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


def _levels_table(result: dict) -> str:
    """Mean ± sd accuracy per difficulty level and condition, with each condition's 95% interval at the
    hardest level."""
    lv = result["analysis"]["levels"]
    lines = ["| condition | " + " | ".join(f"level {v:g}" for v in lv) + " | hardest: 95% CI |",
             "| --- | " + " | ".join("---:" for _ in lv) + " | ---: |"]
    for name, g in result["aggregate"].items():
        c = g["curves"]["levels"]
        ci = g["metrics"]["acc_hardest"]["ci95"]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in zip(c["mean"], c["sd"])) +
                     f" | {'[' + f'{ci[0]:.3f}, {ci[1]:.3f}' + ']' if ci else 'n/a'} |")
    return "\n".join(lines) + "\n"


def write_experiment_report(result: dict, out_dir) -> list[Path]:
    """``experiment.json``, ``report.md`` and (with matplotlib) ``metrics.png``, ``robustness.png`` and
    ``divergence.png`` in ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "experiment.json", out / "report.md"]
    atomic_write_text(paths[0], json.dumps(result, indent=1) + "\n")
    a = result["analysis"]
    seeds = ", ".join(str(s) for s in result["seeds"])
    md = [f"# {result['name']}", "",
          f"Mean ± sample sd over seeds ({seeds}); the number of seeds in parentheses. 95% confidence intervals "
          "(Student t) are in experiment.json.", "", report_table(result),
          "Metrics, all on the held-out images:", ""]
    for m, (h, d) in METRICS.items():
        md.append(f"- **{m}**: {d}.")
    md += ["", f"Analysis: {a['n'] or 'all'} held-out images, noise {a['noise_kind']} at levels "
           f"{a['noise_levels']}, attack {a['attack']} (library {a['attack_library']}) at ε = {a['eps']:g} on "
           f"{a['attack_n'] or a['n'] or 'all'} images, area {a['area']}, perturbation norm {a['divergence_eps']:g}.",
           "", "![metrics](metrics.png)", "", "![robustness](robustness.png)", "", "![divergence](divergence.png)", ""]
    if a.get("levels"):
        md += [f"Accuracy by difficulty level ({a['level_n']} fresh images per level, levels {a['levels']}):", "",
               _levels_table(result), "![accuracy by difficulty level](levels.png)", ""]
    atomic_write_text(paths[1], "\n".join(md))
    if pyplot(optional=True) is None:      # plots are optional
        return paths
    paths += _plot(result, out)
    return paths


def _plot(result: dict, out: Path) -> list[Path]:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    agg, runs, a = result["aggregate"], result["runs"], result["analysis"]
    names = list(agg)
    colors = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    rc = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10,
          "legend.frameon": False}
    paths = []
    with plt.rc_context(rc):
        # bar chart per metric
        fig, axes = plt.subplots(1, len(METRICS), figsize=(2.3 * len(METRICS), 3.0))
        heads = {**{m: h for m, (h, _) in METRICS.items()}, "adv_acc": f"{a['attack'].upper()} acc. (ε={a['eps']:g})",
                 "dim": f"PR ({a['area']})", "lyapunov": f"Lyapunov λ ({a['area']})"}
        for ax, m in zip(axes, METRICS):
            for i, n in enumerate(names):
                s = agg[n]["metrics"][m]
                if s["mean"] is None:
                    continue
                ax.bar(i, s["mean"], color=colors[n], alpha=0.8, width=0.7,
                       yerr=s["sd"] if s["sd"] is not None else None, capsize=3, ecolor="black", lw=0)
                vals = [r["metrics"][m] for r in runs[n].values() if r["metrics"][m] is not None]
                ax.plot(i + np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else [i] * len(vals), vals, "o",
                        color="black", ms=2.5, zorder=3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right")
            ax.set_title(heads[m])
            if m == "lyapunov":
                ax.axhline(0, color="gray", lw=0.8)
        k = len(result["seeds"])
        fig.suptitle(f"{result['name']}: mean ± sd over {k} seed{'s' if k > 1 else ''} (dots: seeds)", fontsize=10)
        paths.append(save_figure(fig, out / "metrics.png", dpi=200, bbox_inches="tight"))

        # robustness: accuracy vs noise level and vs readout step
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.4))
        levels = a["noise_levels"]
        for n in names:
            for ax, key, xs in ((ax1, "noise", levels), (ax2, "speed", None)):
                c = agg[n]["curves"][key]
                mu, sd = 100 * np.asarray(c["mean"]), 100 * np.asarray(c["sd"])
                xs = xs if xs is not None else np.arange(1, len(mu) + 1)
                ax.plot(xs, mu, "o-", color=colors[n], ms=3, lw=1.5, label=n)
                ax.fill_between(xs, mu - sd, mu + sd, color=colors[n], alpha=0.2, lw=0)
        ax1.set(xlabel={"gaussian": "Gaussian noise std", "salt_pepper": "fraction of pixels",
                        "blur": "blur sigma (pixels)"}.get(a["noise_kind"], "noise level"),
                ylabel="accuracy, final step (%)", title=f"Accuracy vs {a['noise_kind']} noise", ylim=(0, 102))
        ax2.set(xlabel="readout step", ylabel="clean accuracy (%)", title="Speed-accuracy", ylim=(0, 102))
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax1.legend(fontsize=8)
        paths.append(save_figure(fig, out / "robustness.png", dpi=200, bbox_inches="tight"))

        # divergence and dimensionality per step
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.4))
        positive = False
        for n in names:
            positive |= bool(np.any(np.asarray(agg[n]["curves"]["divergence"]["mean"], dtype=float) > 0))
            for ax, key in ((ax1, "divergence"), (ax2, "dim")):
                c = agg[n]["curves"][key]
                mu, sd = np.asarray(c["mean"], dtype=float), np.asarray(c["sd"], dtype=float)
                t = np.arange(1, len(mu) + 1)
                lower = mu - sd
                if key == "divergence":           # log scale: leave out steps the perturbation has not reached
                    mu = np.where(mu > 0, mu, np.nan)
                    lower = np.maximum(lower, 0.1 * mu)
                ax.plot(t, mu, "o-", color=colors[n], ms=3, lw=1.5, label=n)
                ax.fill_between(t, lower, mu + sd, color=colors[n], alpha=0.2, lw=0)
        if positive:                              # all zero (a dead area): stay linear
            ax1.set_yscale("log")
        ax1.set(xlabel="step", ylabel="||Δa(t)|| / ||δ||", title=f"Perturbation gain, area {a['area']}")
        ax2.set(xlabel="step", ylabel="participation ratio", title=f"Dimensionality, area {a['area']}")
        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.legend(fontsize=8)
        paths.append(save_figure(fig, out / "divergence.png", dpi=200, bbox_inches="tight"))

        if a.get("levels"):                       # accuracy by the task's difficulty level
            fig, ax = plt.subplots(figsize=(4.6, 3.4))
            xs = np.arange(len(a["levels"]))
            for i, n in enumerate(names):
                c = agg[n]["curves"]["levels"]
                mu, sd = 100 * np.asarray(c["mean"], dtype=float), 100 * np.asarray(c["sd"], dtype=float)
                ax.errorbar(xs + 0.06 * (i - (len(names) - 1) / 2), mu, yerr=sd, fmt="o-", color=colors[n], ms=3,
                            lw=1.5, capsize=2, label=n)
            ax.set_xticks(xs, [f"{v:g}" for v in a["levels"]])
            ax.set(xlabel="difficulty level", ylabel="accuracy, final step (%)", title="Accuracy by difficulty",
                   ylim=(0, 102))
            ax.legend(fontsize=8)
            paths.append(save_figure(fig, out / "levels.png", dpi=200, bbox_inches="tight"))
    return paths
