"""Architecture search over ConvRNNs with Optuna: ``convrnn search CONFIG --trials N``.

A search config (:class:`SearchConfig`, YAML; bundled ones are named ``search_*``) holds a ``base``
training config (:class:`~convrnn.config.TrainConfig` keys: the task, its data options, epochs,
batch size; any classification-like task works unchanged), a ``space`` (:mod:`convrnn.search_space`),
the ``objectives``, ``constraints`` on the parameter count, a ``pruner`` and a ``sampler``.

Each trial

1. waits for its turn (:func:`_take_turn`): it runs only if fewer than N trials numbered below it are
   finished or still running, so K workers on one storage finish exactly N trials (COMPLETE or
   PRUNED; a surplus trial is marked FAIL with the user attribute ``surplus`` and trains nothing);
2. samples an architecture and builds its training config, seeded by ``seed + trial number``
   (reproducible: ``convrnn train`` of the exported config reruns it);
3. counts the model's parameters (on the meta device) and is PRUNED before training when they fall
   outside ``constraints`` (user attribute ``constraint`` says why);
4. trains through :func:`convrnn.train.train` into ``OUT/trials/trial_NNNNN``; after every
   validation the score is reported to Optuna and the pruner (median or Hyperband; single
   objective) may stop it; a loss that diverges prunes it too (``diverged``);
5. returns the objectives: ``accuracy`` (the task's validation score, maximised), ``params``
   and ``macs`` (multiply-accumulates per image over the unrolled steps, minimised) and
   ``predictivity`` (median corrected explained variance of recorded responses, best area and step,
   mean over time bins, from :func:`convrnn.analysis.predictivity.predictivity_report`; needs a
   ``predictivity: {responses: FILE.npz}`` with ``responses`` and ``images``).

The study lives in the storage (SQLite ``OUT/study.db`` by default; any SQLAlchemy URL, e.g.
``postgresql://user@host/db`` for several machines), so re-running the command resumes it. A trial
left RUNNING by a killed worker is marked FAIL at once on restart when its process (same host) is
gone, else by Optuna's heartbeat after ``heartbeat.grace_period`` seconds; a new trial takes its place.
``--workers K`` starts K processes on this machine, each running ``study.optimize`` against the same
storage (samplers seeded ``seed + 7919 * worker``).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import pid_alive
from .search_space import FirstChoice      # (torch-free at import, like this module: the CLI imports it)

__all__ = ["SearchConfig", "load_search", "OBJECTIVES", "default_storage", "open_study", "run_search", "run_worker",
           "count_macs", "trial_config"]

#: objective -> (direction, description)
OBJECTIVES = {
    "accuracy": ("maximize", "the task's validation score at the end of training (Task.metric)"),
    "params": ("minimize", "parameter count"),
    "macs": ("minimize", "multiply-accumulates per image over the unrolled steps"),
    "predictivity": ("maximize", "neural predictivity: corrected EV of the best area/step, mean over time bins"),
}
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random", "nsga2")


def require(module: str, extra: str):
    from .errors import require as _require
    mod = _require(module, extra)
    if module == "optuna":       # heartbeats and fail_stale_trials are "experimental" in Optuna: not our users' concern
        import warnings
        warnings.filterwarnings("ignore", category=mod.exceptions.ExperimentalWarning)
    return mod


def check_keys(what, given, valid) -> None:
    from .errors import check_keys as _check_keys
    _check_keys(what, given, valid)


def _bad(what, expected, got) -> ValueError:
    from .errors import short_repr
    return ValueError(f"search config: {what}: expected {expected}, got {short_repr(got)}")


@dataclass
class SearchConfig:
    """A search: base training config, space, objectives, constraints, pruner, sampler (module docstring)."""

    _what = "search config"

    name: str = "search"
    base: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    objectives: list = field(default_factory=lambda: ["accuracy"])
    constraints: dict = field(default_factory=dict)     # max_params, min_params
    pruner: dict | None = None                          # {kind: median | hyperband | none, ...}; None: auto
    sampler: dict = field(default_factory=lambda: {"kind": "tpe"})
    seed: int = 0                                       # trial seed = seed + trial number
    trials: int = 20                                    # --trials overrides
    predictivity: dict | None = None                    # {responses, areas, method, folds, pool}
    heartbeat: dict = field(default_factory=lambda: {"interval": 10, "grace_period": 60})
    max_failures: int = 10                              # stop after this many trials failed with an error
    keep_checkpoints: bool = False                      # keep each trial's checkpoint/ (optimizer state)
    out_dir: str = "runs/search"

    def __post_init__(self):
        from .search_space import SearchSpace
        if not isinstance(self.name, str) or not self.name.strip():
            raise _bad("name", "a non-empty string", self.name)
        if not isinstance(self.base, dict):
            raise _bad("base", "a mapping of training config keys", self.base)
        self.search_space = SearchSpace(self.space)
        obj = self.objectives if isinstance(self.objectives, list) else [self.objectives]
        if not obj or any(o not in OBJECTIVES for o in obj) or len(set(obj)) != len(obj):
            raise _bad("objectives", f"a non-empty list of distinct objectives from {', '.join(OBJECTIVES)}",
                       self.objectives)
        self.objectives = list(obj)
        if not isinstance(self.constraints, dict):
            raise _bad("constraints", "a mapping {max_params, min_params}", self.constraints)
        check_keys("search constraints", self.constraints, ("max_params", "min_params"))
        for k, v in self.constraints.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise _bad(f"constraints.{k}", "a positive int or null", v)
        p = self.pruner if self.pruner is not None else {"kind": "median" if len(obj) == 1 else "none"}
        if not isinstance(p, dict) or p.get("kind") not in PRUNERS:
            raise _bad("pruner", f"a mapping with kind one of {', '.join(PRUNERS)}", self.pruner)
        check_keys("search pruner", p, ("kind", "n_startup_trials", "n_warmup_steps", "min_resource",
                                        "reduction_factor"))
        if p["kind"] != "none" and len(obj) > 1:
            raise _bad("pruner", "kind: none with several objectives (Optuna prunes single-objective studies only)",
                       p)
        self.pruner = dict(p)
        s = self.sampler
        if not isinstance(s, dict) or s.get("kind", "tpe") not in SAMPLERS:
            raise _bad("sampler", f"a mapping with kind one of {', '.join(SAMPLERS)}", s)
        check_keys("search sampler", s, ("kind", "seed", "n_startup_trials"))
        for k, v in (("seed", self.seed), ("trials", self.trials), ("max_failures", self.max_failures)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "seed" else 1):
                raise _bad(k, "an int >= 0" if k == "seed" else "a positive int", v)
        hb = self.heartbeat
        if not isinstance(hb, dict):
            raise _bad("heartbeat", "a mapping {interval, grace_period} in seconds", hb)
        check_keys("search heartbeat", hb, ("interval", "grace_period"))
        if not all(isinstance(hb.get(k, 1), int) and not isinstance(hb.get(k, 1), bool) and hb.get(k, 1) >= 1
                   for k in ("interval", "grace_period")):
            raise _bad("heartbeat", "positive int seconds {interval, grace_period}", hb)
        if "predictivity" in obj:
            pr = self.predictivity
            if not isinstance(pr, dict) or "responses" not in pr:
                raise _bad("predictivity", "a mapping {responses: FILE.npz (keys responses, images)[, areas, method, "
                           "folds, pool]} for the predictivity objective", pr)
            check_keys("search predictivity", pr, ("responses", "areas", "method", "folds", "pool"))
            if self.search_space.family != "multiarea":
                raise _bad("objectives", "predictivity only with space.family multiarea (it reads areas)", obj)
        self.trial_config(FirstChoice(), 0, "runs/check")    # the base + space build: errors now, not in a worker

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        if not isinstance(d, dict):
            raise _bad("the file", "a mapping of search config keys", d)
        check_keys(cls._what, d, [f.name for f in dataclasses.fields(cls)])
        return cls(**d)

    def directions(self) -> list:
        return [OBJECTIVES[o][0] for o in self.objectives]

    def to_dict(self) -> dict:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def trial_config(self, trial, number: int, out_dir):
        """``(TrainConfig, params, summary)`` of the architecture ``trial`` samples."""
        from .config import TrainConfig
        from .experiment import count_params
        model, mk, overrides, summary = self.search_space.sample(trial, self.base.get("model_kwargs"))
        d = copy.deepcopy(self.base)
        d.setdefault("eval_every", 1)          # a validation per epoch: what the pruner sees
        d.update(overrides)
        d.update(model=model, model_kwargs=mk, seed=self.seed + number, out_dir=str(out_dir))
        try:
            cfg = TrainConfig.from_dict(d)
            params = count_params(model, mk)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"search config: the base config with the sampled architecture {summary} does not "
                             f"build: {e}") from None
        return cfg, params, summary


def load_search(path, overrides=()) -> SearchConfig:
    """Read a search YAML (a path or a bundled ``search_*`` name) with ``key=value`` overrides."""
    from .config import load_yaml
    return SearchConfig.from_dict(load_yaml(path, overrides, "search config"))


# ---- storage and study ------------------------------------------------------------------------------

def default_storage(out_dir) -> str:
    """``sqlite:///OUT/study.db`` (absolute, so every worker opens the same file)."""
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def _storage(url: str, heartbeat: dict | None = None):
    optuna = require("optuna", "search")
    if "://" not in url:                      # a plain file path: SQLite
        url = f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://"):      # SQLAlchemy 2.1 defaults to psycopg 3; take psycopg2 when only it is here
        import importlib.util
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    kw = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    hb = heartbeat or {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kw, heartbeat_interval=hb.get("interval"),
                                          grace_period=hb.get("grace_period"))
    except ImportError as e:
        raise ImportError(f"storage {url.split('://')[0]}: {e} (PostgreSQL: pip install psycopg2-binary or "
                          "'psycopg[binary]')") from None
    except Exception as e:           # sqlalchemy's errors (bad URL, server down) are not ValueErrors
        raise ValueError(f"cannot open the storage {url!r}: {' '.join(str(e).split())[:300]}") from None


def _sampler(cfg: SearchConfig, worker: int):
    optuna = require("optuna", "search")
    s = cfg.sampler
    seed = s.get("seed", cfg.seed) + 7919 * worker
    if s.get("kind", "tpe") == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s["kind"] == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    import warnings
    with warnings.catch_warnings():           # multivariate/group are "experimental" in Optuna
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.get("n_startup_trials", 10),
                                          multivariate=True, group=True, constant_liar=True,
                                          warn_independent_sampling=False)


def _pruner(cfg: SearchConfig):
    optuna = require("optuna", "search")
    p = cfg.pruner
    if p["kind"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.get("n_startup_trials", 5),
                                           n_warmup_steps=p.get("n_warmup_steps", 0))
    if p["kind"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.get("min_resource", 1),
                                              max_resource=cfg.base.get("epochs", 10),
                                              reduction_factor=p.get("reduction_factor", 3))
    return optuna.pruners.NopPruner()


def open_study(cfg: SearchConfig, storage: str, study_name: str, worker: int = 0, create: bool = False):
    """The study ``study_name`` in ``storage`` (created with ``create``); a study made with another
    search config is refused."""
    optuna = require("optuna", "search")
    optuna.logging.set_verbosity(optuna.logging.ERROR)     # our log says what each trial did
    st = _storage(storage, cfg.heartbeat)
    kw = dict(storage=st, study_name=study_name, sampler=_sampler(cfg, worker), pruner=_pruner(cfg))
    if create:
        study = optuna.create_study(directions=cfg.directions(), load_if_exists=True, **kw)
    else:
        try:
            study = optuna.load_study(**kw)
        except KeyError:
            raise ValueError(f"no study {study_name!r} in {storage}") from None
    mine = json.loads(json.dumps(cfg.to_dict(), default=str))
    old = study.user_attrs.get("search_config")
    if old is None and create:
        study.set_user_attr("search_config", mine)
    elif old is not None and {k: v for k, v in old.items() if k != "trials"} != \
            {k: v for k, v in mine.items() if k != "trials"}:
        raise ValueError(f"study {study_name!r} in {storage} was made with a different search config; use another "
                         "--study name (or the same config to resume it)")
    if [d.name.lower() for d in study.directions] != cfg.directions():
        raise ValueError(f"study {study_name!r} optimises {[d.name.lower() for d in study.directions]}, the config "
                         f"{cfg.directions()}; use another --study name")
    return study


def fail_orphans(study) -> list:
    """Mark FAIL every RUNNING trial whose worker ran on this host and is gone (a killed worker), and
    let Optuna's heartbeat fail stale ones from other hosts; returns the numbers failed here."""
    optuna = require("optuna", "search")
    from optuna.trial import TrialState
    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = str(t.user_attrs.get("worker", ""))
        h, _, pid = w.rpartition(":")
        if h == host and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "orphaned", f"worker {w} was gone")
                if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                    failed.append(t.number)
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                pass           # another worker finished or failed it first
    optuna.storages.fail_stale_trials(study)
    return failed


class _Surplus(Exception):
    """The study already has (or will have) its N trials: this trial is marked FAIL and trains nothing."""


def _take_turn(study, trial, n_trials: int, poll: float) -> None:
    """Block until trial ``trial`` may run: fewer than ``n_trials`` trials numbered below it are
    finished (COMPLETE/PRUNED), running or waiting. While running ones could still fail, wait (and
    fail orphans); raise :class:`_Surplus` once the finished ones alone reach ``n_trials``."""
    from optuna.trial import TrialState
    while True:
        before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in before)
        running = sum(t.state == TrialState.RUNNING for t in before)
        waiting = sum(t.state == TrialState.WAITING for t in before)
        if done + running + waiting < n_trials:
            return
        if running == 0 or done + waiting >= n_trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus(f"trial {trial.number}: the study has its {n_trials} trials")
        time.sleep(poll)
        fail_orphans(study)


# ---- the objective ------------------------------------------------------------------------------------

def count_macs(model, input_shape, steps: int) -> int | None:
    """Multiply-accumulates of convolutions and linear layers for one image unrolled for ``steps``
    (measured with forward hooks on a zero image); None when the model cannot be run that way."""
    import torch
    from torch import nn
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):      # batch 1: every output element costs k MACs
            total[0] += out.numel() * m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        p = next(model.parameters())
        x = torch.zeros((1, *input_shape), device=p.device)
        model.eval()
        with torch.no_grad():
            model(x, steps=steps)
        return int(total[0])
    except (TypeError, ValueError, RuntimeError):
        return None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _predictivity(cfg: SearchConfig, run_dir: Path, steps: int, cache: dict) -> float:
    import numpy as np

    from .analysis.predictivity import predictivity_report
    from .checkpoint import load_model
    pr = cfg.predictivity
    if "data" not in cache:
        from .fileio import check_npz_file
        p = Path(pr["responses"])
        check_npz_file(p)
        with np.load(p, allow_pickle=False) as z:
            if "responses" not in z or "images" not in z:
                raise ValueError(f"{p}: the predictivity objective needs keys 'responses' and 'images'; found "
                                 f"{sorted(z.files)}")
            cache["data"] = (z["images"], z["responses"])
    images, responses = cache["data"]
    model = load_model(run_dir / "model.safetensors").eval()
    rep = predictivity_report(model, images, responses, steps, pr.get("areas"), method=pr.get("method", "ridge"),
                              folds=pr.get("folds", 5), pool=pr.get("pool"))
    vals = [b[rep["best_measure"]] for b in rep["best"] if b[rep["best_measure"]] is not None]
    return float(np.mean(vals)) if vals else float("nan")


def make_objective(cfg: SearchConfig, out_dir: Path, n_trials: int, log=print):
    """The Optuna objective of ``cfg`` writing trials under ``out_dir/trials``."""
    optuna = require("optuna", "search")
    from .train import train
    worker = f"{socket.gethostname()}:{os.getpid()}"
    poll = max(0.5, min(2.0, float(cfg.heartbeat.get("interval", 10))))
    single = len(cfg.objectives) == 1
    cache: dict = {}

    def objective(trial):
        trial.set_user_attr("worker", worker)
        _take_turn(trial.study, trial, n_trials, poll)
        run_dir = out_dir / "trials" / f"trial_{trial.number:05d}"
        tcfg, params, summary = cfg.trial_config(trial, trial.number, run_dir)
        for k, v in (("train_config", tcfg.to_dict()), ("params", params), ("summary", summary),
                     ("model", tcfg.model)):
            trial.set_user_attr(k, v)
        lo, hi = cfg.constraints.get("min_params"), cfg.constraints.get("max_params")
        if (hi is not None and params > hi) or (lo is not None and params < lo):
            why = f"{params:,} parameters, outside [{lo or 0:,}, {hi if hi is not None else 'inf'}]"
            trial.set_user_attr("constraint", why)
            log(f"trial {trial.number}: pruned before training ({why})")
            raise optuna.TrialPruned(why)
        log(f"trial {trial.number}: {summary}, {params:,} parameters, seed {tcfg.seed} -> {run_dir}")
        info: dict = {}

        def on_eval(ev):
            if "macs" not in info:
                info["macs"] = count_macs(ev["model"], ev["input_shape"], tcfg.steps)
                trial.set_user_attr("macs", info["macs"])
            trial.set_user_attr("metric", ev["metric"])
            if single:
                trial.report(float(ev["score"]), ev["epoch"])
                if trial.should_prune():
                    trial.set_user_attr("pruned_at_epoch", ev["epoch"])
                    raise optuna.TrialPruned(f"epoch {ev['epoch']}: {ev['metric']} {ev['score']:.4f}")

        t0 = time.perf_counter()
        try:
            res = train(tcfg, progress=False, on_eval=on_eval)
        except FloatingPointError as e:
            trial.set_user_attr("diverged", str(e))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        except optuna.TrialPruned:
            log(f"trial {trial.number}: pruned at epoch {trial.user_attrs.get('pruned_at_epoch')}")
            raise
        except (ValueError, RuntimeError) as e:     # e.g. an image too small for the areas' pooling
            trial.set_user_attr("error", " ".join(str(e).split())[:500])
            log(f"trial {trial.number}: failed: {trial.user_attrs['error']}")
            raise
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if not cfg.keep_checkpoints:
                shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
        values = {"accuracy": res["val_acc"], "params": float(params),
                  "macs": float(info.get("macs") or "nan")}
        if "predictivity" in cfg.objectives:
            values["predictivity"] = _predictivity(cfg, run_dir, tcfg.steps, cache)
            trial.set_user_attr("predictivity", values["predictivity"])
        out = [values[o] for o in cfg.objectives]
        if any(not math.isfinite(v) for v in out):
            trial.set_user_attr("error", f"non-finite objective values {dict(zip(cfg.objectives, out))}")
            raise ValueError(trial.user_attrs["error"])
        log(f"trial {trial.number}: {dict(zip(cfg.objectives, out))} in {trial.user_attrs['seconds']:.1f} s")
        return out[0] if single else out

    return objective


def run_worker(cfg: SearchConfig, storage: str, study_name: str, n_trials: int, out_dir, worker: int = 0,
               log=print) -> int:
    """One worker: ``study.optimize`` until the study has ``n_trials`` finished trials; returns how many
    trials this worker finished. Raises when ``cfg.max_failures`` trials failed with an error."""
    optuna = require("optuna", "search")
    from optuna.trial import TrialState
    study = open_study(cfg, storage, study_name, worker)
    failed = fail_orphans(study)
    if failed:
        log(f"worker {worker}: marked the trials {failed} of a killed worker as failed")
    out_dir = Path(out_dir)
    finished = [0]

    def stop_on_errors(study, trial):
        finished[0] += trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        errors = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
        if len(errors) >= cfg.max_failures:
            study.stop()

    stop = optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    study.optimize(make_objective(cfg, out_dir, n_trials, log), callbacks=[stop, stop_on_errors],
                   catch=(ValueError, RuntimeError, _Surplus), gc_after_trial=True)
    errors = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    if len(errors) >= cfg.max_failures:
        raise ValueError(f"{len(errors)} trials failed with an error (max_failures {cfg.max_failures}); the last: "
                         f"trial {errors[-1].number}: {errors[-1].user_attrs['error']}")
    return finished[0]


def run_search(cfg: SearchConfig, n_trials: int | None = None, storage: str | None = None,
               study_name: str | None = None, workers: int = 1, out_dir=None, log=print) -> dict:
    """Run (or resume) the search: ``workers`` processes (1: this one) until the study has
    ``n_trials`` finished trials; returns ``{"storage", "study", "out_dir", "finished"}``."""
    out = Path(out_dir or cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = n_trials or cfg.trials
    storage = storage or default_storage(out)
    name = study_name or cfg.name
    study = open_study(cfg, storage, name, create=True)
    study.set_user_attr("n_trials", n)
    log(f"study {name!r} in {storage}: {n} trials, {workers} worker(s), outputs in {out}")
    if workers <= 1:
        run_worker(cfg, storage, name, n, out, 0, log)
    else:
        _spawn(cfg, storage, name, n, out, workers, log)
    from optuna.trial import TrialState
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return {"storage": storage, "study": name, "out_dir": str(out), "finished": done}


def _spawn(cfg, storage, name, n, out: Path, workers: int, log) -> None:
    """Start ``workers`` processes (``python -m convrnn.search``), each logging to OUT/logs/worker_K.log."""
    spec = out / "logs" / "search_config.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    from .fileio import atomic_write_text
    atomic_write_text(spec, json.dumps({"config": cfg.to_dict(), "storage": storage, "study": name, "n_trials": n,
                                        "out_dir": str(out)}, default=str))
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    try:
        for k in range(workers):
            f = open(out / "logs" / f"worker_{k}.log", "a")
            procs.append((subprocess.Popen([sys.executable, "-m", "convrnn.search", str(spec), str(k)], env=env,
                                           stdout=f, stderr=subprocess.STDOUT), f))
        log(f"started {workers} workers (pids {', '.join(str(p.pid) for p, _ in procs)}); logs in {out / 'logs'}")
        codes = [p.wait() for p, _ in procs]
    except BaseException:
        for p, _ in procs:
            if p.poll() is None:
                p.terminate()
        raise
    finally:
        for _, f in procs:
            f.close()
    bad = [k for k, c in enumerate(codes) if c != 0]
    if bad:
        tail = (out / "logs" / f"worker_{bad[0]}.log").read_text().strip().splitlines()[-1:]
        raise ValueError(f"search workers {bad} exited with codes {[codes[k] for k in bad]}; see "
                           f"{out / 'logs'} ({tail[0] if tail else 'no output'})")


# ---- command line (``convrnn search``, ``convrnn search-report``; cli.py adds these parsers) -------------

def cmd_search(args) -> int:
    from .search_report import write_search_report
    cfg = load_search(args.config, args.overrides)
    if args.workers < 1 or (args.trials is not None and args.trials < 1):
        raise ValueError("--workers and --trials must be positive ints")
    out = Path(args.out or cfg.out_dir)
    storage = args.storage or default_storage(out)
    name = args.study or cfg.name
    if not args.report:
        res = run_search(cfg, args.trials, storage, name, args.workers, out, log=lambda m: print(m, flush=True))
        print(f"study {name!r}: {res['finished']} finished trials in {storage}")
    write_search_report(storage, name, out / "report", log=lambda m: print(m, flush=True))
    return 0


def cmd_search_report(args) -> int:
    from .search_report import write_search_report
    write_search_report(args.storage, args.study, args.out, top=args.top, log=lambda m: print(m, flush=True))
    return 0


def add_search_parsers(sub) -> None:
    """The ``search`` and ``search-report`` subcommands (called by :func:`convrnn.cli.build_parser`)."""
    s = sub.add_parser("search", help="architecture search with Optuna over a YAML search space (resumable; "
                                      "--workers K processes share the study)")
    s.add_argument("config", help="search YAML or bundled name (search_digits, ...)")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. base.epochs=2 constraints.max_params=50000")
    s.add_argument("--trials", type=int, default=None, help="finished trials to reach in the study (default: the "
                   "config's trials)")
    s.add_argument("--storage", default=None, help="SQLAlchemy URL (default: sqlite:///OUT/study.db); e.g. "
                   "postgresql://user@host/db for several machines")
    s.add_argument("--study", default=None, help="study name (default: the config's name)")
    s.add_argument("--workers", type=int, default=1, help="processes on this machine (default: %(default)s)")
    s.add_argument("--out", default=None, help="output folder: trials/, report/ (default: the config's out_dir)")
    s.add_argument("--report", action="store_true", help="only write the report of the study (OUT/report)")
    s.set_defaults(fn=cmd_search)
    r = sub.add_parser("search-report", help="report of a search: best trials, Pareto front, importances, "
                                             "best config, plots")
    r.add_argument("--study", required=True, help="study name")
    r.add_argument("--storage", required=True, help="the search's SQLAlchemy URL, e.g. sqlite:///runs/search/study.db")
    r.add_argument("--out", default="search-report", help="report folder (default: %(default)s)")
    r.add_argument("--top", type=int, default=10, help="rows of the best-trials table")
    r.set_defaults(fn=cmd_search_report)


def _worker_main(argv) -> int:
    """``python -m convrnn.search SPEC.json K``: worker K of a ``--workers`` search."""
    spec = json.loads(Path(argv[0]).read_text())
    cfg = SearchConfig.from_dict(spec["config"])
    k = int(argv[1])
    run_worker(cfg, spec["storage"], spec["study"], spec["n_trials"], spec["out_dir"], k,
               log=lambda m: print(f"[worker {k}] {m}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
