"""The experiment runner (convrnn experiment): a grid of conditions x seeds trained and analysed, per-seed
values aggregated into mean / sd / t-interval, finished runs skipped, interrupted runs resumed, equal
parameter budgets, and clear errors for bad configs."""
import json
import math
import signal

import numpy as np
import pytest
import torch
import yaml
from helpers import run_cli, run_cli_killed
from safetensors.torch import load_file

from convrnn.experiment import (METRICS, ExperimentConfig, count_params, load_experiment,
                                match_param_count, run_configs, run_experiment, summarize, t_quantile_975)
from convrnn.analysis.geometry import collect_area_outputs, lyapunov_slope, participation_ratio
from convrnn.analysis.robustness import speed_accuracy
from convrnn.checkpoint import load_model
from convrnn.registry import create_model
from convrnn.tasks.classification import ClassificationTask

# 539 training images (val_fraction 0.7), 34 optimizer steps per epoch; about 4 s per run
TINY = dict(
    name="tiny",
    base=dict(task="classification", model="greco_ff",
              model_kwargs=dict(width=0.25, in_channels=1, steps=4, t_on=None, dropout=0.0),
              data_kwargs=dict(dataset="digits", size=16, val_fraction=0.7), epochs=3, batch_size=16, lr=0.02,
              steps=4, loss="all_steps", num_threads=1, channels_last=False, log_every=1000, eval_every=100,
              amp="none"),    # fp32: at lr 0.02 and width 0.25 one bf16 seed collapsed (participation ratio 0)
    conditions={"ff": {}, "fb": {"model": "greco_fb", "model_kwargs.dropout": 0.1}},
    seeds=[0, 1],
    analysis=dict(n=96, noise_levels=[0.0, 0.3, 0.6], eps=0.1, area="L2", batch_size=96, levels=[0.0, 0.5],
                  level_n=48),
)


def write_config(path, d=TINY):
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny 2 conditions x 2 seeds experiment, run once through the CLI."""
    root = tmp_path_factory.mktemp("exp")
    cfg = write_config(root / "tiny.yaml")
    out = root / "out"
    r = run_cli(["experiment", str(cfg), "--out", str(out), "--no-progress"], cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr
    return root, cfg, out, r


def test_aggregates_are_mean_sd_and_t_interval_of_the_seeds(tiny):
    _, _, out, r = tiny
    res = json.loads((out / "experiment.json").read_text())
    assert list(res["aggregate"]) == ["ff", "fb"] and res["seeds"] == [0, 1]
    for cond in ("ff", "fb"):
        runs = res["runs"][cond]
        assert sorted(runs) == ["0", "1"]
        for m in METRICS:
            vals = [runs[s]["metrics"][m] for s in ("0", "1")]
            agg = res["aggregate"][cond]["metrics"][m]
            assert agg["n"] == 2 and agg["values"] == vals
            assert agg["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
            assert agg["sd"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
            half = 12.706205 * agg["sd"] / math.sqrt(2)        # t(0.975, 1 df)
            assert agg["ci95"] == pytest.approx([agg["mean"] - half, agg["mean"] + half], abs=1e-9)
        curves = [runs[s]["curves"]["noise"] for s in ("0", "1")]
        assert res["aggregate"][cond]["curves"]["noise"]["mean"] == pytest.approx(np.mean(curves, 0).tolist())
    # the two seeds are different trainings
    assert res["runs"]["ff"]["0"]["metrics"] != res["runs"]["ff"]["1"]["metrics"]
    assert res["conditions"]["fb"]["model_kwargs"]["dropout"] == 0.1
    assert res["config"]["conditions"] == TINY["conditions"] and res["versions"]["torch"] == torch.__version__
    # report.md: one row per condition with mean ± sd (n)
    md = (out / "report.md").read_text()
    ff = res["aggregate"]["ff"]["metrics"]["accuracy"]
    assert f"| ff | {res['aggregate']['ff']['params']:,} | {ff['mean']:.3f} ± {ff['sd']:.3f} (2) |" in md
    for png in ("metrics.png", "robustness.png", "divergence.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| fb |" in r.stdout


def test_per_run_metrics_are_consistent_and_recomputable(tiny):
    _, _, out, _ = tiny
    res = json.loads((out / "experiment.json").read_text())
    levels = TINY["analysis"]["noise_levels"]
    for cond in ("ff", "fb"):
        for seed, run in res["runs"][cond].items():
            m, c = run["metrics"], run["curves"]
            assert run["n"] == 96 and run["steps"] == 4
            assert m["accuracy"] == c["speed"][-1]
            assert m["speed_auc"] == pytest.approx(np.mean(c["speed"]))
            assert c["noise"][0] == m["accuracy"]                 # level 0 is the clean set
            assert m["noise_auc"] == pytest.approx(np.trapezoid(c["noise"], levels) / (levels[-1] - levels[0]))
            assert m["adv_acc"] == c["adv_steps"][-1] and 0 <= m["adv_acc"] <= 1
            assert m["dim"] == c["dim"][-1] and m["dim"] >= 1
            assert m["lyapunov"] == pytest.approx(lyapunov_slope(c["divergence"]))
    # recompute one run from its saved model on the same held-out images
    run = res["runs"]["fb"]["1"]
    model = load_model(out / "runs" / "fb" / "seed1").eval()
    _, (x, y) = ClassificationTask("digits", size=16, val_fraction=0.7)._load()
    x, y = x[:96], y[:96]
    sa = speed_accuracy(model, x, y, 4)
    assert sa["accuracy"] == pytest.approx(run["curves"]["speed"])
    pr = participation_ratio(collect_area_outputs(model, x, 4, ["L2"])["L2"][-1])
    assert run["metrics"]["dim"] == pytest.approx(pr, rel=1e-6)
    # accuracy by difficulty level: the task's fresh data at each level (digits: noise std), analysis seed + 7
    task = ClassificationTask("digits", size=16, val_fraction=0.7)
    accs = [speed_accuracy(model, *task.eval_data(lv, 48, 0 + 7), 4)["final"] for lv in (0.0, 0.5)]
    assert run["curves"]["levels"] == pytest.approx(accs) and run["metrics"]["acc_hardest"] == accs[-1]


def test_report_of_a_dead_network(tiny, tmp_path):
    """A condition whose area never responds (divergence 0, Lyapunov exponent undefined) still gets a
    report: n/a in the table, a linear axis instead of a log one."""
    from convrnn.experiment import write_experiment_report
    res = json.loads((tiny[2] / "experiment.json").read_text())
    for g in res["aggregate"].values():
        g["curves"]["divergence"] = {"mean": [0.0] * 4, "sd": [0.0] * 4}
        g["metrics"]["lyapunov"] = summarize([None, None])
    for runs in res["runs"].values():
        for r in runs.values():
            r["metrics"]["lyapunov"] = None
    paths = write_experiment_report(res, tmp_path)
    assert sorted(p.name for p in paths) == ["divergence.png", "experiment.json", "levels.png", "metrics.png",
                                             "report.md", "robustness.png"]
    table = (tmp_path / "report.md").read_text().split("Metrics, all on")[0]     # the metrics table
    rows = [line for line in table.splitlines() if line.startswith("| ff |") or line.startswith("| fb |")]
    assert len(rows) == 2 and all(line.endswith("| n/a |") for line in rows)


def test_rerun_skips_finished_runs(tiny):
    root, cfg, out, _ = tiny
    files = sorted(out.glob("runs/*/seed*/model.safetensors")) + sorted(out.glob("runs/*/seed*/analysis.json"))
    assert len(files) == 8
    before = {f: f.stat().st_mtime_ns for f in files}
    old = json.loads((out / "experiment.json").read_text())
    r = run_cli(["experiment", str(cfg), "--out", str(out), "--no-progress"], cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("skipped (trained); cached") == 4 and "training" not in r.stdout
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert json.loads((out / "experiment.json").read_text())["aggregate"] == old["aggregate"]


def test_interrupted_run_resumes_to_the_same_model(tiny):
    """A run killed after 40 steps (checkpoint at the end of epoch 1, step 34) is resumed by re-running the
    command and ends with the same weights and metrics as the uninterrupted run."""
    root, cfg, out, _ = tiny
    out2 = root / "resumed"
    one = ["conditions={ff: {}}", "seeds=[0]"]
    r = run_cli_killed(["experiment", str(cfg), *one, "--out", str(out2), "--no-progress"], cwd=root,
                       after_steps=40, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    run = out2 / "runs" / "ff" / "seed0"
    assert (run / "checkpoint").is_dir() and not (run / "model.safetensors").exists()
    r = run_cli(["experiment", str(cfg), *one, "--out", str(out2), "--no-progress"], cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "resumed in" in r.stdout
    a, b = load_file(str(run / "model.safetensors")), load_file(str(out / "runs/ff/seed0/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    m2 = json.loads((out2 / "experiment.json").read_text())["runs"]["ff"]["0"]["metrics"]
    m1 = json.loads((out / "experiment.json").read_text())["runs"]["ff"]["0"]["metrics"]
    assert m2 == pytest.approx(m1)
    # the same folder with another training config is refused
    r = run_cli(["experiment", str(cfg), *one, "base.lr=0.03", "--out", str(out2), "--no-progress"], cwd=root)
    assert r.returncode == 2 and "different training config" in r.stderr


# --------------------------------------------------------------------------- equal parameter budget

CELLS = {"time_decay": ("elman", {"activation": "relu", "decay": 0.5, "lateral": False}), "vanilla": ("elman", {}),
         "gru": ("convgru", {}), "lstm": ("convlstm", {}), "rgc": ("rgc", {})}


def test_match_param_count_equal_budget():
    base = dict(in_channels=1, num_classes=10)
    target = count_params("greco_ff", {**base, "width": 0.5})
    assert target == sum(p.numel() for p in create_model("greco_ff", **base, width=0.5).parameters())
    widths = {}
    for name, (cell, kw) in CELLS.items():
        mk = {**base, "cell": cell, "cell_kwargs": kw}
        w, n = match_param_count("greco_ff", mk, target, tolerance=0.05)
        real = create_model("greco_ff", **mk, width=w)
        assert n == sum(p.numel() for p in real.parameters())
        assert abs(n - target) / target <= 0.05, name
        assert type(real.areas["L2"].cell).__name__ == {"elman": "ElmanCell", "convgru": "ConvGRUCell",
                                                        "convlstm": "ConvLSTMCell", "rgc": "ReciprocalGatedCell"}[cell]
        widths[name] = w
    # fewer weights per channel -> wider: time decay (9C²) > vanilla (18C²) > RGC (45C²) > GRU (54C²) > LSTM (72C²)
    assert widths["time_decay"] > widths["vanilla"] > widths["rgc"] > widths["gru"] > widths["lstm"]
    assert widths["gru"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="no width"):
        match_param_count("greco_ff", base, 10)
    with pytest.raises(ValueError, match="tolerance"):
        match_param_count("greco_ff", base, target + 1, tolerance=1e-9)


def test_bundled_configs_resolve():
    cfgs, info = run_configs(load_experiment("cells_digits"))
    assert list(info) == ["time_decay", "vanilla", "gru", "lstm", "rgc"]
    ref = info["gru"]["params"]
    for name, i in info.items():
        assert abs(i["params"] - ref) / ref <= 0.05, name
        assert cfgs[name][0].model_kwargs["width"] == i["model_kwargs"]["width"]
    assert info["time_decay"]["model_kwargs"]["cell_kwargs"] == {"activation": "relu", "decay": 0.5, "lateral": False}
    cfgs, info = run_configs(load_experiment("feedback_dropout_digits", ["seeds=[5]"]))
    assert {n: (cfgs[n][5].model, cfgs[n][5].model_kwargs["dropout"]) for n in cfgs} == {
        "ff": ("greco_ff", 0.0), "ff+dropout": ("greco_ff", 0.2), "fb": ("greco_fb", 0.0),
        "fb+dropout": ("greco_fb", 0.2)}
    assert cfgs["fb"][5].seed == 5 and cfgs["fb"][5].out_dir.endswith("runs/fb/seed5")
    run_configs(load_experiment("feedback_dropout_cifar10"))


# --------------------------------------------------------------------------- errors and statistics

def test_bad_config_keys_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown experiment config key\(s\): 'conditons' \(did you mean 'conditions'"):
        ExperimentConfig.from_dict({**TINY, "conditons": {}})
    with pytest.raises(ValueError, match=r"unknown experiment analysis key\(s\): 'epsilon'"):
        ExperimentConfig.from_dict({**TINY, "analysis": {"epsilon": 0.1}})
    bad = ExperimentConfig.from_dict({**TINY, "conditions": {"ff": {}, "oops": {"epochz": 3}}})
    with pytest.raises(ValueError, match=r"condition 'oops': unknown training config key\(s\): 'epochz' "
                                         r"\(did you mean 'epochs'"):
        run_configs(bad)
    bad = ExperimentConfig.from_dict({**TINY, "conditions": {"x": {"model_kwargs.widht": 2}}})
    with pytest.raises(ValueError, match=r"condition 'x': .*'widht' \(did you mean 'width'"):
        run_configs(bad)
    with pytest.raises(ValueError, match="equal_params.reference 'lstm' is not a condition"):
        ExperimentConfig.from_dict({**TINY, "equal_params": {"reference": "lstm"}})
    with pytest.raises(ValueError, match="noise_levels"):
        ExperimentConfig.from_dict({**TINY, "analysis": {"noise_levels": [0.2, 0.1]}})
    # an unknown area fails before anything is trained
    exp = ExperimentConfig.from_dict({**TINY, "analysis": {**TINY["analysis"], "area": "V4"}})
    with pytest.raises(ValueError, match="analysis.area 'V4' is not an area of greco_ff; areas: L1, L2, L3"):
        run_experiment(exp, tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()
    # through the CLI: one line on stderr, exit code 2
    cfg = write_config(tmp_path / "bad.yaml", {**TINY, "seedz": [0]})
    r = run_cli(["experiment", str(cfg), "--out", str(tmp_path / "o")], cwd=tmp_path)
    assert r.returncode == 2 and "unknown experiment config key(s): 'seedz' (did you mean 'seeds'?)" in r.stderr
    r = run_cli(["experiment", "no_such_experiment"], cwd=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "feedback_dropout_digits" in r.stderr


def test_overrides_reach_into_the_config(tmp_path):
    cfg = write_config(tmp_path / "e.yaml")
    exp = load_experiment(cfg, ["seeds=[3, 4]", "base.epochs=7", "analysis.eps=0.2", "conditions.fb.lr=0.5"])
    assert exp.seeds == [3, 4] and exp.base["epochs"] == 7 and exp.settings().eps == 0.2
    cfgs, _ = run_configs(exp, tmp_path / "o")
    assert cfgs["fb"][4].lr == 0.5 and cfgs["ff"][3].lr == 0.02 and cfgs["ff"][3].epochs == 7
    assert cfgs["fb"][4].model_kwargs == {**TINY["base"]["model_kwargs"], "dropout": 0.1}
    assert TINY["base"]["model_kwargs"]["dropout"] == 0.0          # the base dict is not modified


def test_t_quantile_and_summarize():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 40)) + [50, 100, 1000]:
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-5)
    s = summarize([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.2)
    assert s["ci95"] == pytest.approx([0.7 - 4.302653 * 0.2 / math.sqrt(3), 0.7 + 4.302653 * 0.2 / math.sqrt(3)])
    one = summarize([0.4])
    assert one["n"] == 1 and one["mean"] == 0.4 and one["sd"] is None and one["ci95"] is None
    assert summarize([float("nan"), 1.0, 3.0])["mean"] == 2.0 and summarize([])["mean"] is None
