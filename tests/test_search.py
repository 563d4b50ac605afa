"""Architecture search (convrnn.search): workers sharing a storage, resume after a kill, pruning, the
exported best config, malformed specs, PostgreSQL. Tiny networks on 8x8 digits: about a second a trial."""
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from convrnn.search import SearchConfig, run_search  # noqa: E402
from convrnn.search_report import write_search_report  # noqa: E402
from helpers import run_cli, run_cli_killed  # noqa: E402

from optuna.trial import TrialState  # noqa: E402

TINY = {
    "name": "tiny",
    "base": {"task": "classification", "model_kwargs": {"in_channels": 1, "num_classes": 10},
             "data_kwargs": {"dataset": "digits", "size": 8}, "epochs": 1, "batch_size": 128, "loss": "final",
             "amp": "none", "channels_last": False, "num_threads": 1, "log_every": 1000, "ckpt_every": 100000,
             "warmup_epochs": 0},
    "space": {"family": "multiarea", "areas": [1, 2], "cells": ["convgru", None], "width": [2, 4], "growth": 1,
              "kernel": 3, "pool": 2, "steps": [1, 2], "feedback": {"rules": ["add", "gain"]},
              "lr": {"low": 1e-3, "high": 2e-2, "log": True}},
    "pruner": {"kind": "none"},
    "sampler": {"kind": "random"},
    "heartbeat": {"interval": 1, "grace_period": 2},
}


def _cfg(tmp_path, **changes) -> Path:
    d = copy.deepcopy(TINY)
    d.update(changes)
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _trials(out: Path, name="tiny"):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    return study.get_trials(deepcopy=False)


def _finished(trials):
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _check_exact(trials, n):
    """n finished trials, each trained once in its own folder with its own seed; every other trial is a
    surplus or a killed worker's, and trained nothing to completion."""
    fin = _finished(trials)
    assert len(fin) == n
    assert len({t.number for t in fin}) == n
    seeds = [t.user_attrs["train_config"]["seed"] for t in fin if "train_config" in t.user_attrs]
    assert len(seeds) == len(set(seeds))
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("surplus") or t.user_attrs.get("orphaned"), t.user_attrs
        assert t.state not in (TrialState.RUNNING, TrialState.WAITING)


def test_two_workers_share_sqlite(tmp_path):
    out = tmp_path / "out"
    r = run_cli(["search", str(_cfg(tmp_path)), "--trials", "6", "--workers", "2", "--out", str(out)], tmp_path,
                timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    trials = _trials(out)
    _check_exact(trials, 6)
    workers = {t.user_attrs["worker"] for t in _finished(trials)}
    assert len(workers) == 2, workers            # both processes took trials
    done = sorted(p.name for p in (out / "trials").iterdir())
    assert done == sorted(f"trial_{t.number:05d}" for t in _finished(trials) if "constraint" not in t.user_attrs)
    assert (out / "report" / "report.md").is_file() and (out / "report" / "best_config.yaml").is_file()


def test_resume_after_kill_and_exported_config_reruns(tmp_path):
    from convrnn.config import load_config
    from convrnn.train import train
    out = tmp_path / "out"
    args = ["search", str(_cfg(tmp_path)), "--trials", "3", "--out", str(out)]
    r = run_cli_killed(args, tmp_path, after_steps=3, timeout=300)       # SIGKILL inside the first trial
    assert r.returncode < 0, r.stderr + r.stdout
    assert [t.state for t in _trials(out)] == [TrialState.RUNNING]      # left behind by the dead worker
    t0 = time.time()
    r = run_cli(args, tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "marked the trials [0] of a killed worker as failed" in r.stdout
    trials = _trials(out)
    assert trials[0].state == TrialState.FAIL and "orphaned" in trials[0].user_attrs
    _check_exact(trials, 3)
    assert time.time() - t0 < 120
    # the exported best config reruns the best trial: same architecture, seed and validation score
    best = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").best_trial
    cfg = load_config(str(out / "report" / "best_config.yaml"), [f"out_dir={tmp_path / 'rerun'}"])
    assert cfg.seed == best.number and cfg.model_kwargs == best.user_attrs["train_config"]["model_kwargs"]
    res = train(cfg, progress=False)
    assert (tmp_path / "rerun" / "model.safetensors").is_file()
    assert res["val_acc"] == pytest.approx(best.value, abs=1e-4)


def test_pruning_stops_a_bad_trial(tmp_path):
    d = copy.deepcopy(TINY)
    d["base"]["epochs"] = 3
    d["space"] = {"family": "multiarea", "areas": [1], "cells": ["convgru"], "width": [8], "steps": [1],
                  "lr": {"low": 1e-7, "high": 5e-2, "log": True}}
    d["pruner"] = {"kind": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    cfg = SearchConfig.from_dict(d)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.enqueue_trial({"lr": 3e-2})          # a good trial first, then one that cannot learn
    study.enqueue_trial({"lr": 1e-7})
    run_search(cfg, 2, storage, "tiny", 1, tmp_path / "out", log=lambda m: None)
    good, bad = study.get_trials()
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 3
    assert bad.state == TrialState.PRUNED and len(bad.intermediate_values) < 3
    assert bad.user_attrs["pruned_at_epoch"] == max(bad.intermediate_values)


def test_constraint_prunes_before_training_and_report(tmp_path):
    cfg = SearchConfig.from_dict({**copy.deepcopy(TINY), "constraints": {"max_params": 1500},
                                  "objectives": ["accuracy", "params"]})
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(cfg, 4, storage, "tiny", 1, tmp_path / "out", log=lambda m: None)
    study = optuna.load_study(study_name="tiny", storage=storage)
    trials = study.get_trials()
    over = [t for t in trials if "constraint" in t.user_attrs]
    assert all(t.state == TrialState.PRUNED and t.user_attrs["params"] > 1500 for t in over)
    assert not any((tmp_path / "out" / "trials" / f"trial_{t.number:05d}").exists() for t in over)
    res = write_search_report(storage, "tiny", tmp_path / "report", log=lambda m: None)
    assert res["objectives"] == ["accuracy", "params"]
    if any(t.state == TrialState.COMPLETE for t in trials):
        assert res["pareto_front"] and (tmp_path / "report" / "best_config.yaml").is_file()
    assert res["importances"] or "importances" in res["importances_note"]
    assert (tmp_path / "report" / "report.md").read_text().startswith("# Search tiny")


def test_multi_objective_with_predictivity(tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    imgs = rng.random((30, 1, 8, 8)).astype(np.float32)
    resp = rng.random((3, 30, 4, 2)).astype(np.float32) + imgs.mean((1, 2, 3))[None, :, None, None]
    np.savez(tmp_path / "neurons.npz", images=imgs, responses=resp)
    cfg = SearchConfig.from_dict({**copy.deepcopy(TINY), "objectives": ["accuracy", "predictivity", "macs"],
                                  "predictivity": {"responses": str(tmp_path / "neurons.npz"), "folds": 3}})
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(cfg, 2, storage, "tiny", 1, tmp_path / "out", log=lambda m: None)
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(len(t.values) == 3 and t.values[2] == t.user_attrs["macs"] > 0 for t in trials)
    res = write_search_report(storage, "tiny", tmp_path / "report", log=lambda m: None)
    assert res["pareto_front"] and (tmp_path / "report" / "pareto.png").is_file()


@pytest.mark.parametrize("change, message", [
    ({"space": {"cells": ["convgruu"]}}, "registered cell names"),
    ({"space": {"width": {"low": 8}}}, r"numbers low <= high"),
    ({"space": {"kernel": [2, 3]}}, "odd positive ints"),
    ({"space": {"norm": ["batch"]}}, "a GroupNorm group count or 'instance'"),
    ({"space": {"widht": [8]}}, r"unknown search space \(multiarea\) key\(s\): 'widht' \(did you mean 'width'\?\)"),
    ({"space": {"feedback": {"edges": [["A1", "A2"]]}}}, r"top-down pair"),
    ({"space": {"family": "transformer"}}, "expected multiarea or weight_tied"),
    ({"space": {"lr": {"low": 0, "high": 1, "log": True}}}, "low > 0 with log"),
    ({"space": {"family": "weight_tied", "cells": [None]}}, "a weight-tied model needs a cell"),
    ({"objectives": ["accuracy", "params"], "pruner": {"kind": "median"}}, "several objectives"),
    ({"objectives": ["speed"]}, "objectives: expected a non-empty list of distinct objectives from accuracy"),
    ({"constraints": {"max_params": -1}}, r"constraints.max_params: expected a positive int"),
    ({"base": {**TINY["base"], "batch_size": 0}}, "does not build: training config: batch_size must be a positive"),
])
def test_malformed_specs_are_rejected(change, message):
    d = copy.deepcopy(TINY)
    for k, v in change.items():
        d[k] = {**d[k], **v} if k == "space" and "family" not in v else v
    with pytest.raises(ValueError, match=message):
        SearchConfig.from_dict(d)


def test_norm_knob_reaches_every_area():
    from convrnn.search_space import FirstChoice
    d = copy.deepcopy(TINY)
    d["space"] = {**d["space"], "norm": ["instance", 0]}
    cfg = SearchConfig.from_dict(d)
    model, mk, _, summary = cfg.search_space.sample(FirstChoice())
    assert summary["norm"] == "instance" and all(a["norm"] == "instance" for a in mk["areas"])
    import convrnn
    net = convrnn.create_model(model, **mk)
    assert all(a.norm.num_groups == a.channels for a in net.areas.values())


def test_weight_tied_space_and_cli_error(tmp_path):
    d = copy.deepcopy(TINY)
    d["base"]["model_kwargs"] = {"in_channels": 1, "out_channels": 10}
    d["space"] = {"family": "weight_tied", "cells": ["convgru", "elman"], "width": [4, 8], "steps": [2]}
    cfg = SearchConfig.from_dict(d)
    assert cfg.search_space.family == "weight_tied"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "space": {"areas": [0]}}))
    r = run_cli(["search", str(bad), "--trials", "1", "--out", str(tmp_path / "o")], tmp_path)
    assert r.returncode == 2 and "areas: expected positive ints" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_on_postgresql(tmp_path):
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not on PATH; Debian: apt-get install postgresql)")
    import importlib.util
    if not any(importlib.util.find_spec(m) for m in ("psycopg2", "psycopg")):
        pytest.skip("no PostgreSQL driver is installed (pip install psycopg2-binary)")
    prefix = []
    base = Path(tempfile.mkdtemp(prefix="convrnn-pg-"))       # outside pytest's 0700 folders
    if os.geteuid() == 0:                                      # initdb refuses to run as root
        import pwd
        runuser = shutil.which("runuser")
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pw = None
        if not runuser or pw is None:
            pytest.skip("running as root and no 'postgres' user + runuser to start a PostgreSQL server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    try:
        subprocess.run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                                 f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {getattr(e, 'stderr', b'') or e}")
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        out = tmp_path / "out"
        r = run_cli(["search", str(_cfg(tmp_path)), "--trials", "4", "--workers", "2", "--storage", url,
                     "--out", str(out)], tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr + r.stdout
        from convrnn.search import _storage
        trials = optuna.load_study(study_name="tiny", storage=_storage(url)).get_trials()
        _check_exact(trials, 4)
        assert not (out / "study.db").exists()
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
