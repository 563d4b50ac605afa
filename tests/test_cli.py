"""The ``convrnn`` command line, in process (``main([...])``) and as ``python -m convrnn.cli``."""
import json

import numpy as np
import pytest
from helpers import run_cli
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

import convrnn
from convrnn.cli import main
from convrnn.tasks.mazes import generate_mazes, load_mazes


TINY = dict(task="mazes", model="dtnet_recall_mazes", model_kwargs={"width": 8, "steps": 3}, train_size=5,
            n_train=8, n_val=4, epochs=3, batch_size=4, lr=0.005, steps=3, loss="progressive", alpha=0.5,
            device="cpu", channels_last=False, num_threads=1, ckpt_every=100, log_every=1, seed=2)


def _user_error(capsys, argv, command):
    """Run main(argv); it must return 2 with one line on stderr and no traceback. Returns that line."""
    threads = torch.get_num_threads()
    try:
        rc = main(argv)
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"convrnn {command}: error: ")
    assert "Traceback" not in err
    return lines[0]


def _main(argv):
    threads = torch.get_num_threads()
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`convrnn train` with a YAML file + overrides (in process); returns the run folder."""
    d = tmp_path_factory.mktemp("cli_train")
    cfg = d / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "model_kwargs": {"width": 8, "steps": 3}, "epochs": 5,
                                   "out_dir": str(d / "never")}))
    threads = torch.get_num_threads()
    try:
        rc = main(["train", str(cfg), "model_kwargs.width=4", "epochs=2", "lr=0.01", f"out_dir={d / 'run'}",
                   "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return d / "run"


# ---- 8. data -----------------------------------------------------------------------------------------

def test_data_mazes_folder_and_npz(tmp_path, capsys):
    want_x, want_y = generate_mazes(5, 9, seed=1)
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "1", "--out", str(tmp_path / "d")]) == 0
    assert "5 9x9 mazes (24 px)" in capsys.readouterr().out
    x, y = np.load(tmp_path / "d" / "inputs.npy"), np.load(tmp_path / "d" / "solutions.npy")
    assert x.shape == (5, 3, 24, 24) and y.shape == (5, 24, 24)
    assert x.dtype == np.uint8 and y.dtype == np.uint8            # compact files; loading gives float
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "1", "--float32", "--out",
                  str(tmp_path / "f")]) == 0
    x, y = np.load(tmp_path / "f" / "inputs.npy"), np.load(tmp_path / "f" / "solutions.npy")
    assert x.dtype == np.float32 and y.dtype == np.int64           # easy-to-hard's own dtypes
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "1", "--out", str(tmp_path / "m.npz")]) == 0
    with np.load(tmp_path / "m.npz") as z:
        assert sorted(z.files) == ["inputs", "solutions"]
        assert np.array_equal(z["inputs"], want_x) and np.array_equal(z["solutions"], want_y)
    lx, ly = load_mazes(tmp_path / "m.npz")
    assert np.array_equal(lx, want_x) and np.array_equal(ly, want_y)
    # another seed gives other mazes; options reach the generator
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "2", "--out", str(tmp_path / "s2")]) == 0
    assert not np.array_equal(np.load(tmp_path / "s2" / "inputs.npy"), want_x)
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "1", "--algorithm", "wilson",
                  "--out", str(tmp_path / "w")]) == 0
    assert np.array_equal(np.load(tmp_path / "w" / "inputs.npy"), generate_mazes(5, 9, seed=1, algorithm="wilson")[0])
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--seed", "1", "--family", "cycles",
                  "--out", str(tmp_path / "c")]) == 0
    want = generate_mazes(5, 9, seed=1, start_dead_end=False, cycles=0.1, unique_path=True)[1]
    assert np.array_equal(np.load(tmp_path / "c" / "solutions.npy"), want)
    assert _main(["data", "mazes", "--size", "9", "--n", "5", "--family", "cycles", "--cycles", "0.3",
                  "--out", str(tmp_path / "c2")]) == 2
    assert "--family sets the generator options itself" in capsys.readouterr().err


def test_data_mazes_starts_without_torch(tmp_path):
    """The generator path of the CLI never imports torch (start-up is most of a small run's time)."""
    import subprocess
    import sys

    from helpers import SRC
    code = ("import sys; from convrnn.cli import main; "
            f"rc = main(['data', 'mazes', '--size', '9', '--n', '3', '--out', {str(tmp_path / 'd')!r}]); "
            "print(rc, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(SRC)})
    assert res.stdout.split()[-2:] == ["0", "False"], res.stdout + res.stderr


def test_data_mazes_user_errors(tmp_path, capsys):
    line = _user_error(capsys, ["data", "mazes", "--size", "8", "--n", "2", "--out", str(tmp_path / "x")], "data")
    assert "odd" in line
    line = _user_error(capsys, ["data", "mazes", "--size", "5", "--n", "2", "--out", str(tmp_path / "x.txt")], "data")
    assert ".npz" in line


# ---- 9. train + eval ---------------------------------------------------------------------------------

def test_train_applies_yaml_and_overrides(trained):
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["model_kwargs"] == {"width": 4, "steps": 3}
    assert cfg["epochs"] == 2 and cfg["lr"] == 0.01 and cfg["loss"] == "progressive" and cfg["seed"] == 2
    assert cfg["out_dir"] == str(trained)
    with safe_open(str(trained / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["config"])["width"] == 4
    rows = (trained / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4                              # header + 2 epochs x 2 steps
    assert json.loads((trained / "checkpoint" / "trainer.json").read_text())["step"] == 4


def test_second_train_over_a_run_needs_resume(trained, capsys):
    before = (trained / "checkpoint" / "trainer.json").read_text()
    line = _user_error(capsys, ["train", str(trained / "config.json"), "--no-progress"], "train")
    assert "--resume" in line and str(trained / "checkpoint") in line
    assert (trained / "checkpoint" / "trainer.json").read_text() == before


def test_eval_writes_json_and_plots(trained, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "ev"
    assert _main(["eval", str(trained), "--sizes", "9", "--n", "4", "--max-steps", "3", "--out", str(out), "--json",
                  "--device", "cpu"]) == 0
    stdout = capsys.readouterr().out
    res = json.loads((out / "eval.json").read_text())
    assert res["schema"] == "convrnn.eval/1" and res["checkpoint"] == str(trained)
    assert list(res["levels"]) == ["9"]
    lv = res["levels"]["9"]
    assert lv["n"] == 4 and len(lv["curve"]) == 3 and sum(lv["steps_hist"]) == 4
    assert json.loads(stdout.strip().splitlines()[-1]) == res      # --json prints the same result
    lines = stdout.splitlines()
    assert lines[0].startswith("Spearman correlation of steps used with each sample's solution length")
    table = lines[1:]
    assert table[0].split() == ["level", "acc", "%", "mean", "steps", "median", "cap", "at", "cap", "ms/sample"]
    assert table[1].split()[0] == "9" and float(table[1].split()[1]) == pytest.approx(100 * lv["accuracy"], abs=0.05)
    assert table[1].split()[4:6] == ["3", str(lv["hit_cap"])] and lv["max_steps"] == 3
    for name in ("accuracy_vs_steps.png", "steps_vs_difficulty.png", "examples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a .safetensors file works as well as the folder, and --no-curves drops the curve
    assert _main(["eval", str(trained / "model.safetensors"), "--sizes", "5,9", "--n", "2", "--max-steps", "2",
                  "--halting", "fixed", "--no-curves", "--out", str(tmp_path / "ev2"), "--device", "cpu"]) == 0
    res2 = json.loads((tmp_path / "ev2" / "eval.json").read_text())
    assert list(res2["levels"]) == ["5", "9"] and "curve" not in res2["levels"]["5"]
    assert res2["levels"]["9"]["steps_hist"] == [0, 2] and res2["halting"] == "fixed"


def test_console_entry_train_and_eval(tmp_path):
    """The real console entry: train, eval with --json, and a user error."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "n_train": 4, "model_kwargs": {"width": 4, "steps": 2},
                                   "steps": 2, "out_dir": "run"}))
    r = run_cli(["train", str(cfg), "--no-progress"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "done: val acc" in r.stdout and (tmp_path / "run" / "model.safetensors").is_file()
    ev = run_cli(["eval", "run", "--sizes", "9", "--n", "2", "--max-steps", "2", "--out", "ev", "--json",
               "--device", "cpu"], tmp_path)
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout.strip().splitlines()[-1])
    assert "9" in res["levels"] and json.loads((tmp_path / "ev" / "eval.json").read_text()) == res
    bad = run_cli(["eval", "nope", "--device", "cpu"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "nope" in bad.stderr


# ---- 10. user errors: exit 2, one line, no traceback --------------------------------------------------

def test_unknown_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    line = _user_error(capsys, ["train", str(cfg), "epoch=1", f"out_dir={tmp_path / 'r'}"], "train")
    assert "'epoch' (did you mean 'epochs'?)" in line
    assert not (tmp_path / "r").exists()
    line = _user_error(capsys, ["train", str(cfg), "loss=foo"], "train")
    assert "final, all_steps, progressive, act, ponder" in line
    line = _user_error(capsys, ["train", str(tmp_path / "missing.yaml")], "train")
    assert "mazes_cpu" in line


def test_missing_checkpoint(tmp_path, capsys):
    line = _user_error(capsys, ["eval", str(tmp_path / "nothing"), "--device", "cpu", "--out", str(tmp_path / "o")],
                       "eval")
    assert str(tmp_path / "nothing") in line
    assert not (tmp_path / "o").exists()


def test_resume_without_checkpoint_via_cli(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "out_dir": str(tmp_path / "r")}))
    line = _user_error(capsys, ["train", str(cfg), "--resume", "--no-progress"], "train")
    assert "nothing to resume" in line


def test_malformed_sizes(trained, tmp_path, capsys):
    line = _user_error(capsys, ["eval", str(trained), "--sizes", "9,x", "--device", "cpu", "--out", str(tmp_path)],
                       "eval")
    assert "'9,x'" in line
    line = _user_error(capsys, ["eval", str(trained), "--sizes", ",", "--device", "cpu", "--out", str(tmp_path)],
                       "eval")
    assert "at least one" in line
    # a bad --halting is only noticed inside evaluate(), after its progress bar started on stderr
    rc = _main(["eval", str(trained), "--sizes", "9", "--halting", "sometimes", "--n", "1", "--device", "cpu",
                "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("convrnn eval: error: unknown halting policy 'sometimes'")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_checkpoint(trained, tmp_path, capsys, damage):
    raw = (trained / "model.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(raw[: len(raw) // 3] if damage == "truncated" else b"\x00\x01garbage" * 50)
    line = _user_error(capsys, ["eval", str(bad), "--sizes", "9", "--n", "1", "--device", "cpu",
                                "--out", str(tmp_path / "o")], "eval")
    assert "bad.safetensors" in line and "truncated or corrupt" in line


def test_checkpoint_without_config(tmp_path, capsys):
    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    line = _user_error(capsys, ["eval", str(p), "--device", "cpu", "--out", str(tmp_path / "o")], "eval")
    assert "no model config" in line


def test_weights_that_do_not_fit_their_config(tmp_path, capsys):
    big = convrnn.create_model("dtnet_recall_mazes", width=8, steps=2)
    small = convrnn.create_model("dtnet_recall_mazes", width=4, steps=2)
    p = tmp_path / "mismatch.safetensors"
    save_file({k: v.contiguous() for k, v in big.state_dict().items()}, str(p),
              metadata={"config": json.dumps(small.config.to_dict())})
    line = _user_error(capsys, ["eval", str(p), "--sizes", "9", "--n", "1", "--device", "cpu",
                                "--out", str(tmp_path / "o")], "eval")
    assert "mismatch.safetensors" in line


# ---- 11. list ------------------------------------------------------------------------------------------

def test_list_prints_every_cell_and_model(capsys):
    assert _main(["list"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.strip().splitlines())
    cells = [c.strip() for c in lines["cells"].split(",")]
    models = [m.strip() for m in lines["models"].split(",")]
    assert cells == convrnn.list_cells() and len(cells) >= 7
    assert {"convgru", "convlstm", "elman", "hgru", "locrnn", "residual", "rgc"} <= set(cells)
    assert models == convrnn.list_models() and "dtnet_recall_mazes" in models


def test_parser_errors_exit_2(capsys):
    for argv in (["frobnicate"], ["data", "mazes", "--n", "2"], ["eval", "x", "--amp", "fp8"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "usage: convrnn" in capsys.readouterr().err


def test_train_and_eval_a_feedback_network_on_digits_with_noise_levels(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "greco"
    code = main(["train", "--no-progress", "mazes_cpu", "task=classification", "model=greco_fb",
                 "model_kwargs={width: 0.125, in_channels: 1, num_classes: 10}", "data_kwargs={dataset: digits, size: 16}",
                 "loss=all_steps", "steps=3", "epochs=1", "batch_size=64", "lr=0.003", "time_limit=null",
                 "path_weight=1", "num_threads=1", f"out_dir={out}"])
    assert code == 0
    code = main(["eval", str(out), "--task", "classification", "--noise", "0,0.3", "--n", "40", "--max-steps", "3",
                 "--halting", "fixed", "--no-progress", "--device", "cpu", "--out", str(tmp_path / "ev")])
    assert code == 0
    res = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert res["task"] == "classification" and list(res["levels"]) == ["0.0", "0.3"]
    lv = res["levels"]["0.0"]
    assert lv["n"] == 40 and lv["accuracy"] == pytest.approx(lv["curve"][-1])   # fixed halting: last step
    assert main(["eval", str(out), "--task", "classification", "--noise", "0,x", "--device", "cpu"]) == 2
