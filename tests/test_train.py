"""Training loop, checkpoints, configs, lr schedule and evaluation (all tiny, CPU, seeded)."""
import csv
import json
import math
import signal

import pytest
from helpers import run_cli, run_cli_killed
import torch
import yaml
from safetensors.torch import load_file

import convrnn
from convrnn.checkpoint import PRETRAINED_DIR, CheckpointError, load_model, save_model
from convrnn.config import CONFIG_DIR, TrainConfig, load_config
from convrnn.evaluate import SCHEMA, evaluate, write_report
from convrnn.tasks.maze_task import MazeTask
from convrnn.tasks.mazes import generate_mazes
from convrnn.train import lr_factor, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(cfg, **kw):
    """train() in this process, restoring the thread count that cfg.num_threads may change."""
    threads = torch.get_num_threads()
    try:
        return train(cfg, progress=False, **kw)
    finally:
        torch.set_num_threads(threads)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _tiny_cfg(out_dir, **kw):
    d = dict(model="dtnet_recall_mazes", model_kwargs={"width": 4, "steps": 3}, train_size=5, n_train=8, n_val=4,
             epochs=1, batch_size=4, lr=0.005, steps=3, loss="final", device="cpu", channels_last=False,
             num_threads=1, out_dir=str(out_dir), ckpt_every=100, log_every=1, seed=3)
    d.update(kw)
    return TrainConfig.from_dict(d)


# ---- 1. overfitting 16 mazes ---------------------------------------------------------------------

OVERFIT = dict(model="dtnet_recall_mazes", model_kwargs={"width": 8, "steps": 10}, train_size=5, n_train=16,
               n_val=4, epochs=150, batch_size=16, lr=0.01, warmup_epochs=15, weight_decay=0.0, clip=1.0, steps=10,
               loss="final", path_weight=2.0, device="cpu", channels_last=False, num_threads=1, ckpt_every=1000,
               log_every=1, eval_every=1000, seed=1)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit")
    cfg = TrainConfig.from_dict({**OVERFIT, "out_dir": str(out)})
    torch.manual_seed(cfg.seed)   # the trainer seeds with cfg.seed before building: the same initial weights
    init = convrnn.create_model(cfg.model, **cfg.model_kwargs)
    res = _train(cfg)
    return cfg, init, res, out


def _train_acc(model, cfg):
    x, y = generate_mazes(cfg.n_train, cfg.train_size, seed=cfg.seed)   # the training set
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        return MazeTask().correct(model.eval()(x, steps=cfg.steps).output, y, x).float().mean().item()


def test_overfits_sixteen_mazes(overfit):
    cfg, init, res, out = overfit
    rows = _rows(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 151))          # one step per epoch, all logged
    losses = [float(r["loss"]) for r in rows]
    assert losses[0] == pytest.approx(math.log(2), abs=0.02)               # 2 classes, untrained
    assert sum(losses[-5:]) / 5 < 0.2 * losses[0]
    assert res["steps"] == 150 and res["out_dir"] == str(out)
    assert 0.0 <= res["val_acc"] <= 1.0 and res["val_steps"] == 10.0      # validated once, at the end (fixed steps)
    before = _train_acc(init, cfg)
    after = _train_acc(load_model(out), cfg)
    assert before <= 0.125
    assert after >= 0.75 and after >= before + 0.6


def test_lr_column_follows_warmup_and_cosine(overfit):
    cfg, _, _, out = overfit
    rows = _rows(out / "metrics.csv")
    for r in rows:
        done = int(r["step"])
        assert r["lr"] == f"{cfg.lr * lr_factor(cfg, done - 1, 150, 1):.3e}"
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[14] == pytest.approx(cfg.lr, rel=1e-3)                     # end of the 15 warm-up steps
    assert lrs[0] == pytest.approx(cfg.lr / 15, rel=1e-3)
    assert lrs[-1] < 1e-3 * cfg.lr


# ---- 2. resume after a kill is bit-identical ------------------------------------------------------

def test_resume_after_kill_is_bit_identical(tmp_path):
    base = dict(model="dtnet_recall_mazes", model_kwargs={"width": 4, "steps": 3}, train_size=5, n_train=16,
                n_val=4, epochs=3, batch_size=4, lr=0.01, warmup_epochs=1, steps=3, loss="progressive", alpha=0.5,
                device="cpu", channels_last=False, num_threads=1, ckpt_every=5, log_every=1, seed=7)
    # A: uninterrupted (in process)
    cfg_a = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "a")})
    _train(cfg_a)
    # B: killed after step 7 (last checkpoint: step 5, mid-epoch), then resumed, both via the CLI
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text(yaml.safe_dump({**base, "out_dir": str(tmp_path / "b")}))
    killed = run_cli_killed(["train", str(cfg_path), "--no-progress"], tmp_path, after_steps=7)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ck = tmp_path / "b" / "checkpoint"
    assert json.loads((ck / "trainer.json").read_text())["step"] == 5
    assert [int(r["step"]) for r in _rows(tmp_path / "b" / "metrics.csv")] == [1, 2, 3, 4, 5]
    assert not (tmp_path / "b" / "model.safetensors").exists()
    resumed = run_cli(["train", str(cfg_path), "--resume", "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and len(wa) > 0
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    oa = load_file(str(tmp_path / "a" / "checkpoint" / "optimizer.safetensors"))
    ob = load_file(str(ck / "optimizer.safetensors"))
    assert oa.keys() == ob.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)
    ra, rb = _rows(tmp_path / "a" / "metrics.csv"), _rows(tmp_path / "b" / "metrics.csv")
    assert [int(r["step"]) for r in ra] == list(range(1, 13))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]   # noqa: E731
    assert strip(ra) == strip(rb)
    assert sum(bool(r["val_acc"]) for r in rb) == 3                       # validated at the end of each epoch
    # the trained weights moved away from the initialisation
    torch.manual_seed(7)
    init = convrnn.create_model("dtnet_recall_mazes", width=4, steps=3).state_dict()
    assert not torch.equal(init["encoder.0.weight"], wa["encoder.0.weight"])


# ---- 3. new run vs resume ---------------------------------------------------------------------------

@pytest.fixture
def tiny_run(tmp_path):
    cfg = _tiny_cfg(tmp_path / "run")
    _train(cfg)
    return cfg, tmp_path / "run"


def test_new_run_over_a_checkpoint_needs_resume(tiny_run):
    cfg, out = tiny_run
    before = (out / "checkpoint" / "trainer.json").read_text()
    with pytest.raises(ValueError, match="--resume"):
        _train(cfg)
    assert (out / "checkpoint" / "trainer.json").read_text() == before    # nothing overwritten


def test_resume_with_other_config_is_refused(tiny_run):
    cfg, out = tiny_run
    other = TrainConfig.from_dict({**cfg.to_dict(), "lr": 0.002})
    with pytest.raises(CheckpointError, match="different config"):
        _train(other, resume=True)
    # fields that do not change the optimisation may differ
    same = TrainConfig.from_dict({**cfg.to_dict(), "num_threads": 2, "device": "cpu"})
    assert _train(same, resume=True)["steps"] == 2


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _train(_tiny_cfg(tmp_path / "empty"), resume=True)


def test_resume_with_other_width_is_a_checkpoint_error(tiny_run):
    cfg, _ = tiny_run
    other = TrainConfig.from_dict({**cfg.to_dict(), "model_kwargs": {"width": 6, "steps": 3}})
    with pytest.raises(CheckpointError):
        _train(other, resume=True)


# ---- 4. checkpoint robustness ----------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate_half", "truncate_header", "empty", "garbage"])
def test_corrupt_model_file_is_a_checkpoint_error(tiny_run, damage):
    cfg, out = tiny_run
    for path in (out / "model.safetensors", out / "checkpoint" / "model.safetensors"):
        raw = path.read_bytes()
        path.write_bytes({"truncate_half": raw[: len(raw) // 2], "truncate_header": raw[:6], "empty": b"",
                          "garbage": bytes(range(256)) * 4}[damage])
    with pytest.raises(CheckpointError, match="model.safetensors") as e:
        load_model(out)
    assert isinstance(e.value, ValueError)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        _train(cfg, resume=True)


def test_corrupt_optimizer_or_trainer_state(tiny_run):
    cfg, out = tiny_run
    ck = out / "checkpoint"
    raw = (ck / "optimizer.safetensors").read_bytes()
    (ck / "optimizer.safetensors").write_bytes(raw[:-10])
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        _train(cfg, resume=True)
    (ck / "optimizer.safetensors").write_bytes(raw)
    (ck / "trainer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="trainer.json"):
        _train(cfg, resume=True)


def test_trainer_step_mismatch_is_reported(tiny_run):
    cfg, out = tiny_run
    tj = out / "checkpoint" / "trainer.json"
    state = json.loads(tj.read_text())
    assert state["step"] == 2
    tj.write_text(json.dumps({**state, "step": 1}))
    with pytest.raises(CheckpointError, match="different steps"):
        _train(cfg, resume=True)


def test_load_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = convrnn.create_model("convrnn_dense", width=5, steps=4).eval()
    with torch.no_grad():                 # make the weights differ from a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model(tmp_path / "m.safetensors", model, {"step": 9})
    loaded = load_model(tmp_path / "m.safetensors").eval()
    assert loaded.config == model.config
    x = torch.from_numpy(generate_mazes(2, 5, seed=0)[0])
    with torch.no_grad():
        a, b = model(x, steps=6, halting="act"), loaded(x, steps=6, halting="act")
    assert torch.equal(a.output, b.output) and torch.equal(a.steps, b.steps)
    sd = load_file(str(tmp_path / "m.safetensors"))
    assert sd.keys() == model.state_dict().keys()


def test_load_model_in_a_process_that_imported_no_model(tmp_path):
    """checkpoint.load_model imports no model module: the registry (told by the package root how to
    register the built-ins) finds the architecture a checkpoint names."""
    import subprocess
    import sys

    from helpers import SRC
    save_model(tmp_path / "m.safetensors", convrnn.create_model("greco_ff", width=0.125))
    code = ("import sys; from convrnn.checkpoint import load_model; assert 'convrnn.models' not in sys.modules; "
            f"m = load_model({str(tmp_path / 'm.safetensors')!r}); print(type(m).__name__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(SRC)})
    assert res.stdout.split() == ["MultiAreaNetwork"], res.stderr
    assert convrnn.load_model is convrnn.checkpoint.load_model
    from safetensors.torch import save_file
    save_file(load_file(str(tmp_path / "m.safetensors")), str(tmp_path / "n.safetensors"),
              metadata={"config": "{}", "architecture": "Nope"})
    with pytest.raises(CheckpointError, match="unknown architecture 'Nope'; known: .*RecurrentModel"):
        load_model(tmp_path / "n.safetensors")


def test_pretrained_without_bundled_weights():
    name = next(m for m in convrnn.list_models() if not (PRETRAINED_DIR / f"{m}.safetensors").exists())
    bundled = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
    with pytest.raises(ValueError, match=f"no bundled weights for model '{name}'") as e:
        convrnn.create_model(name, pretrained=True)
    for b in bundled or ["none"]:
        assert b in str(e.value)


# ---- 5. load_config ----------------------------------------------------------------------------------

def test_load_config_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: convrnn_dense\nmodel_kwargs: {width: 32, steps: 7}\nepochs: 9\nloss: final\n")
    cfg = load_config(str(p), ["model_kwargs.width=8", "epochs=2", "lr=0.01", "data_kwargs.cycles=0.5"])
    assert cfg.model == "convrnn_dense" and cfg.loss == "final"
    assert cfg.model_kwargs == {"width": 8, "steps": 7}
    assert cfg.epochs == 2 and type(cfg.epochs) is int
    assert cfg.lr == 0.01 and type(cfg.lr) is float
    assert cfg.data_kwargs == {"cycles": 0.5}
    assert load_config(None, ["tensorboard=true", "val_size=13"]).tensorboard is True
    assert load_config(str(p)).epochs == 9


def test_load_config_errors(tmp_path):
    with pytest.raises(ValueError, match="'epoch' \\(did you mean 'epochs'\\?\\)"):
        load_config(None, ["epoch=3"])
    with pytest.raises(ValueError, match="loss must be one of final, all_steps, progressive, act, ponder, got 'foo'"):
        load_config(None, ["loss=foo"])
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        load_config(None, ["epochs=0"])
    with pytest.raises(ValueError, match="expected key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(FileNotFoundError) as e:
        load_config(str(tmp_path / "nope.yaml"))
    bundled = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
    assert {"mazes_cpu", "mazes_dtnet_gpu", "mazes_act", "mazes_mix_cpu"} <= set(bundled)
    for b in bundled:
        assert b in str(e.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(str(bad))
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(str(bad))


def test_removed_stop_after_steps_is_ignored_when_null_and_refused_when_set():
    """Saved config.json files (runs, pretrained provenance) hold ``stop_after_steps: null``: they still
    load; a value asks for the removed test hook and is refused with what to do instead."""
    saved = json.loads((PRETRAINED_DIR / "dtnet_mazes_w64.train.json").read_text())
    assert saved["stop_after_steps"] is None
    assert TrainConfig.from_dict({"stop_after_steps": None, "epochs": 2}) == TrainConfig(epochs=2)
    assert "stop_after_steps" not in TrainConfig().to_dict()
    with pytest.raises(ValueError, match="stop_after_steps was a test hook.*--resume"):
        load_config(None, ["stop_after_steps=7"])


@pytest.mark.parametrize("name", ["mazes_cpu", "mazes_dtnet_gpu", "mazes_act", "mazes_mix_cpu", "mazes_mix_gpu", "mazes_trees_cpu"])
def test_bundled_configs_resolve_and_are_valid(name):
    cfg = load_config(name)
    assert cfg == load_config(str(CONFIG_DIR / f"{name}.yaml"))
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    assert cfg.to_dict() == {**TrainConfig().to_dict(), **raw}
    defaults = TrainConfig()
    for k, v in cfg.to_dict().items():                 # no float written as a YAML string (e.g. 1e-3)
        if isinstance(getattr(defaults, k), float):
            assert isinstance(v, (int, float)) and not isinstance(v, bool), (k, v)
    assert cfg.model in convrnn.list_models()
    model = convrnn.create_model(cfg.model, **cfg.model_kwargs)
    assert model.config.width == cfg.model_kwargs["width"]


def test_exponent_floats_are_floats():
    assert load_config(None, ["lr=1e-3"]).lr == 0.001


# ---- 6. lr schedule --------------------------------------------------------------------------------

def test_lr_factor_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, warmup_epochs=2)
    spe, total = 5, 50
    f = [lr_factor(cfg, s, total, spe) for s in range(total)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])    # linear warm-up over 2 epochs
    assert f[10] == pytest.approx(1.0)
    assert f[30] == pytest.approx(0.5)                                   # half-way through the decay
    assert all(a >= b for a, b in zip(f[10:], f[11:]))                   # monotone decay
    assert 0 < f[-1] < 0.01
    assert lr_factor(cfg, total, total, spe) == pytest.approx(0.0, abs=1e-12)
    const = TrainConfig(epochs=10, warmup_epochs=2, schedule="constant")
    assert [lr_factor(const, s, total, spe) for s in (0, 9, 10, 49)] == pytest.approx([0.1, 1, 1, 1])
    none = TrainConfig(epochs=10, warmup_epochs=0)
    assert lr_factor(none, 0, total, spe) == pytest.approx(1.0)


def test_lr_factor_time_limit_anneals_by_wall_time():
    cfg = TrainConfig(epochs=10, warmup_epochs=5, time_limit=100.0)
    # warm-up capped at 10% of the steps; then the larger of step- and time-progress
    assert lr_factor(cfg, 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(cfg, 10, 100, 10, seconds=50.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 10, 100, 10, seconds=0.0) == pytest.approx(1.0)
    assert lr_factor(cfg, 11, 100, 10, seconds=150.0) == pytest.approx(0.0, abs=1e-12)


# ---- 7. evaluate() and write_report() ------------------------------------------------------------------

def _check_level(lv, n, max_steps):
    assert set(lv) >= {"n", "accuracy", "mean_steps", "median_steps", "ms_per_sample", "steps_hist", "curve",
                       "best_fixed_steps", "best_fixed_accuracy"}
    assert lv["n"] == n
    assert 0.0 <= lv["accuracy"] <= 1.0
    assert 1 <= lv["median_steps"] <= max_steps and 1 <= lv["mean_steps"] <= max_steps
    assert lv["ms_per_sample"] > 0
    assert len(lv["steps_hist"]) == max_steps and sum(lv["steps_hist"]) == n
    assert sum((i + 1) * c for i, c in enumerate(lv["steps_hist"])) == pytest.approx(n * lv["mean_steps"])
    assert len(lv["curve"]) == max_steps and all(0.0 <= c <= 1.0 for c in lv["curve"])
    assert all(abs(c * n - round(c * n)) < 1e-9 for c in lv["curve"])     # fractions of n samples
    assert lv["best_fixed_steps"] == max(range(max_steps), key=lambda i: (lv["curve"][i], -i)) + 1
    assert lv["best_fixed_accuracy"] == max(lv["curve"])


def test_evaluate_schema_and_consistency(overfit, tmp_path):
    cfg, _, _, out = overfit
    model, task = load_model(out), MazeTask()
    # seed = the training seed: level 5 holds training mazes, which the model solves after 10 steps
    fixed = evaluate(model, task, [5, 9], n=6, max_steps=12, halting="fixed", seed=cfg.seed, progress=False)
    assert fixed["schema"] == SCHEMA == "convrnn.eval/1"
    assert fixed["task"] == "mazes" and fixed["halting"] == "fixed" and fixed["seed"] == cfg.seed
    assert list(fixed["levels"]) == ["5", "9"]
    for lv in fixed["levels"].values():
        _check_level(lv, 6, 12)
        assert lv["accuracy"] == pytest.approx(lv["curve"][-1], abs=1e-6)
        assert lv["steps_hist"][-1] == 6 and lv["mean_steps"] == lv["median_steps"] == 12
    assert fixed["levels"]["5"]["curve"][9] >= 0.5          # the trained step count
    assert fixed["levels"]["5"]["curve"][0] == 0.0            # one step cannot trace a path
    act = evaluate(model, task, [5, 9], n=6, max_steps=12, halting="act", seed=cfg.seed, progress=False)
    assert act["halting"] == "act"
    for k, lv in act["levels"].items():
        _check_level(lv, 6, 12)
        assert lv["curve"] == fixed["levels"][k]["curve"]    # the curve does not depend on the halting policy
        # the halting unit was never trained (final loss): q = sigmoid(-2) each step, so ACT halts where
        # 9 * 0.119 first reaches 1 - eps
        assert lv["steps_hist"][8] == 6 and lv["mean_steps"] == 9
    # write_report: eval.json + plots
    paths = write_report(act, tmp_path / "rep", model, task)
    names = {p.name for p in paths}
    assert names == {"eval.json", "accuracy_vs_steps.png", "steps_vs_difficulty.png", "examples.png"}
    assert json.loads((tmp_path / "rep" / "eval.json").read_text()) == json.loads(json.dumps(act))
    for n in names - {"eval.json"}:
        data = (tmp_path / "rep" / n).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_evaluate_untrained_and_no_curve(tmp_path):
    torch.manual_seed(0)
    model = convrnn.create_model("convrnn_dense", width=4, steps=2)
    res = evaluate(model, MazeTask(), [5], n=3, max_steps={5: 3}, halting="convergence", curve=False, progress=False)
    lv = res["levels"]["5"]
    assert "curve" not in lv and "best_fixed_steps" not in lv
    assert lv["n"] == 3 and sum(lv["steps_hist"]) == 3 and len(lv["steps_hist"]) == 3
    paths = write_report(res, tmp_path)
    assert [p.name for p in paths] == ["eval.json", "steps_vs_difficulty.png"]


def test_checkpoint_survives_a_kill_between_the_two_renames(tmp_path):
    import os

    import convrnn
    from convrnn.checkpoint import load_training_state, resolve_checkpoint, save_training_state
    m = convrnn.create_model("convrnn_dense", width=4)
    opt = torch.optim.AdamW(m.parameters())
    ck = tmp_path / "checkpoint"
    save_training_state(ck, m, opt, {"step": 100})
    assert not (tmp_path / "checkpoint.new").exists() and not (tmp_path / "checkpoint.old").exists()
    os.replace(ck, tmp_path / "checkpoint.old")          # as if killed after the first rename
    assert resolve_checkpoint(ck) == tmp_path / "checkpoint.old"
    assert load_training_state(ck, m, opt)["step"] == 100
    save_training_state(ck, m, opt, {"step": 200})         # the next save cleans up
    assert resolve_checkpoint(ck) == ck and not (tmp_path / "checkpoint.old").exists()


def test_written_files_get_the_usual_mode(tmp_path):
    import os
    import stat

    from convrnn.fileio import atomic_write_text
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_eval_with_data_takes_one_level(tmp_path):
    import convrnn
    from convrnn.evaluate import evaluate
    from convrnn.tasks.maze_task import MazeTask
    from convrnn.tasks.mazes import generate_mazes, save_mazes
    save_mazes(tmp_path / "d", *generate_mazes(2, 9))
    m = convrnn.create_model("convrnn_dense", width=4)
    with pytest.raises(ValueError, match="one difficulty level"):
        evaluate(m, MazeTask(), [9, 13], n=2, max_steps=2, data=str(tmp_path / "d"), progress=False)


def test_bundled_config_name_is_found_next_to_a_folder_of_that_name(tmp_path, monkeypatch):
    """`convrnn train pathfinder_cpu` run where a folder `pathfinder_cpu` exists (an earlier run's
    out_dir) still means the bundled config."""
    from convrnn.config import load_config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mazes_cpu").mkdir()
    assert load_config("mazes_cpu").task == "mazes"
