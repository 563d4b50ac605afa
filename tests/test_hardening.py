"""Issue 14: no lost runs, no silent wrong results, every bad input a one-line error."""
import argparse
import io
import json
import math
import os
import pickle
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
import yaml
from helpers import SRC, run_cli

import convrnn
from convrnn.checkpoint import CheckpointError, init_from, load_model, save_model
from convrnn.cli import main
from convrnn.config import TrainConfig, load_config
from convrnn.fileio import LOCK_NAME, RunLock, RunLockedError, check_npy_file
from convrnn.tasks.classification import RestrictedUnpickler, UnsafePickleError, load_cifar
from convrnn.tasks.mazes import MazeDataError, generate_mazes, load_mazes, save_mazes
from convrnn.tasks.pathfinder import PathfinderDataError, load_pathfinder
from convrnn.train import lr_factor, train

TINY = dict(task="mazes", model="dtnet_recall_mazes", model_kwargs={"width": 8, "steps": 3}, train_size=5,
            n_train=8, n_val=4, epochs=2, batch_size=4, lr=0.005, steps=3, loss="progressive", alpha=0.5,
            device="cpu", channels_last=False, num_threads=1, ckpt_every=100, log_every=1, seed=2)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _user_error(capsys, argv, command, rc=2):
    threads = torch.get_num_threads()
    try:
        got = main(argv)
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert got == rc, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"convrnn {command}: ")
    return lines[0]


def _cfg_file(tmp_path, **kw):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump({**TINY, "out_dir": str(tmp_path / "run"), **kw}))
    return p


# ---- 1. one process per run folder ---------------------------------------------------------------

def _hold_lock(folder):
    code = ("import sys, time; from convrnn.fileio import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_training_into_a_folder_owned_by_a_live_process_is_refused(tmp_path, capsys):
    cfg = _cfg_file(tmp_path)
    holder = _hold_lock(tmp_path / "run")
    try:
        line = _user_error(capsys, ["train", str(cfg), "--no-progress"], "train")
        assert str(tmp_path / "run") in line and f"process {holder.pid}" in line
        with pytest.raises(RunLockedError, match=str(holder.pid)):
            RunLock(tmp_path / "run").acquire()
    finally:
        holder.kill()
        holder.wait()
    # the owner died (SIGKILL, no cleanup): its lock file is stale and taken over
    assert (tmp_path / "run" / LOCK_NAME).is_file()
    assert main(["train", str(cfg), "--no-progress"]) == 0
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == TINY["epochs"]


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "here"}))
    with RunLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists() and folder.is_dir()


def test_two_concurrent_trainings_into_one_folder(tmp_path):
    cfg = _cfg_file(tmp_path, epochs=20)
    args = [sys.executable, "-m", "convrnn.cli", "train", str(cfg), "--no-progress"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    rcs = sorted(p.returncode for p in procs)
    assert rcs == [0, 2], outs
    err = next(e for (o, e), p in zip(outs, procs) if p.returncode == 2)
    assert len(err.strip().splitlines()) == 1
    assert "in use by process" in err or "already holds a checkpoint" in err


def test_failed_start_leaves_no_folder_behind(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path / "new"), "data": str(tmp_path / "missing")})
    with pytest.raises(MazeDataError):
        train(cfg, progress=False)
    assert not (tmp_path / "new").exists()


# ---- 2. config checks at load time -----------------------------------------------------------------

@pytest.mark.parametrize("override, match", [
    ({"time_limit": 0}, "time_limit must be > 0"),
    ({"time_limit": -5}, "time_limit"),
    ({"eval_every": 0}, "eval_every must be a positive int"),
    ({"n_val": 0}, "n_val must be a positive int"),
    ({"n_train": 0}, "n_train must be a positive int"),
    ({"tbptt": 0}, "tbptt"),
    ({"tbptt": 2.5}, "tbptt"),
    ({"tbptt": "3"}, "tbptt"),
    ({"num_threads": -1}, "num_threads"),
    ({"alpha": float("nan")}, "alpha must be a finite number"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"lr": "1e999"}, "lr must be a finite number"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"model_kwargs": [1, 2]}, "model_kwargs must be a mapping"),
    ({"data_kwargs": {"sizes": list(range(20_000))}}, "data_kwargs: more than"),
    ({"init": [1]}, "init must be a scalar"),
])
def test_bad_config_values_are_refused_at_load(override, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({**TINY, **override})


def test_bad_config_is_one_cli_line(tmp_path, capsys):
    line = _user_error(capsys, ["train", str(_cfg_file(tmp_path)), "alpha=.nan", "--no-progress"], "train")
    assert "alpha" in line
    line = _user_error(capsys, ["train", str(_cfg_file(tmp_path)), "num_threads=-1"], "train")
    assert "num_threads" in line


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\ntbptt: *a8\n")
    t = time.perf_counter()
    with pytest.raises(ValueError, match="more than"):
        load_config(str(p))
    with pytest.raises(ValueError, match="tbptt"):        # built in Python: the type check refuses it at once
        a = ["x"] * 10
        for _ in range(9):
            a = [a] * 10
        TrainConfig.from_dict({**TINY, "tbptt": a})
    assert time.perf_counter() - t < 5


def test_warmup_shorter_than_a_step_never_multiplies_the_lr():
    cfg = TrainConfig.from_dict({**TINY, "warmup_epochs": 0.01, "schedule": "constant"})
    assert max(lr_factor(cfg, s, 100, 2) for s in range(100)) == 1.0
    cfg = TrainConfig.from_dict({**TINY, "warmup_epochs": 0.01})
    assert all(0 <= lr_factor(cfg, s, 100, 2) <= 1.0 for s in range(100))


def test_empty_data_set_refuses_to_start(tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    np.save(data / "inputs.npy", np.zeros((0, 3, 16, 16), np.uint8))
    np.save(data / "solutions.npy", np.zeros((0, 16, 16), np.uint8))
    cfg = TrainConfig.from_dict({**TINY, "data": str(data), "out_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match="training set is empty"):
        train(cfg, progress=False)


# ---- 3. finiteness -----------------------------------------------------------------------------------

def test_non_finite_weights_are_refused_on_load(tmp_path):
    model = convrnn.create_model("dtnet_recall_mazes", width=8, steps=3)
    name = next(k for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 10)
    with torch.no_grad():
        model.state_dict()[name].view(-1)[:7] = float("nan")
    save_model(tmp_path / "model.safetensors", model)
    with pytest.raises(CheckpointError, match=rf"model.safetensors: tensor '{name}' has 7 non-finite values"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="non-finite"):
        init_from(convrnn.create_model("dtnet_recall_mazes", width=8, steps=3), str(tmp_path / "model.safetensors"))


def test_eval_refuses_non_finite_outputs(tmp_path, capsys):
    model = convrnn.create_model("dtnet_recall_mazes", width=8, steps=3)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e30)
    save_model(tmp_path / "m" / "model.safetensors", model)
    line = _user_error(capsys, ["eval", str(tmp_path / "m"), "--sizes", "5", "--n", "2", "--no-curves",
                                "--no-progress", "--halting", "fixed", "--out", str(tmp_path / "e")], "eval")
    assert "non-finite" in line


# ---- 4. untrusted files ----------------------------------------------------------------------------

def test_unpickler_refuses_calling_ndarray_and_forged_shapes(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    # ndarray((100000, 3072), dtype('u1')): a few bytes that would load as 300 MB of uninitialised memory
    evil = (b"(dp0\nS'data'\np1\ncnumpy\nndarray\n((I100000\nI3072\ntcnumpy\ndtype\n(S'u1'\nI0\nI1\ntRtRsS'labels'\n"
            b"(lp2\ns.")
    (root / "data_batch_1").write_bytes(evil)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"data_batch_1.*numpy.ndarray"):
        load_cifar(root)
    blob = pickle.dumps({b"data": np.zeros(4, np.uint8)}, protocol=2).replace(b"K\x04\x85", b"J\x00\x00\x00\x10\x85")
    with pytest.raises(pickle.UnpicklingError, match="needs 268435456 bytes"):
        RestrictedUnpickler(io.BytesIO(blob)).load()
    for dt in ("O", "V8", "M8[s]"):     # object, void or datetime dtypes: refused
        with pytest.raises(UnsafePickleError, match="numpy.dtype"):
            RestrictedUnpickler(io.BytesIO(f"cnumpy\ndtype\n(S'{dt}'\nI0\nI1\ntR.".encode())).load()


def _forged_npz(path, key, shape):
    """A .npz whose member declares ``shape`` (uint8) but holds only a few KB of zeros (deflated)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    buf.write(bytes(4096))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{key}.npy", buf.getvalue())


def test_forged_npz_and_npy_are_refused_before_allocating(tmp_path):
    _forged_npz(tmp_path / "m.npz", "inputs", (20_000, 3, 200, 200))          # declares 2.4 GB
    with pytest.raises(MazeDataError, match=r"m.npz\[inputs.npy\]: declares .* 2400000000 bytes but holds"):
        load_mazes(tmp_path / "m.npz")
    _forged_npz(tmp_path / "p.npz", "images", (2**40,))
    with pytest.raises(PathfinderDataError, match="over the .*-byte limit"):
        load_pathfinder(tmp_path / "p.npz")
    (tmp_path / "d").mkdir()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 3, 2, 2)})
    (tmp_path / "d" / "inputs.npy").write_bytes(buf.getvalue() + bytes(100))
    with pytest.raises(MazeDataError, match="inputs.npy: declares"):
        load_mazes(tmp_path / "d")
    np.save(tmp_path / "obj.npy", np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: holds Python objects"):
        check_npy_file(tmp_path / "obj.npy")


@pytest.mark.parametrize("damage, match", [
    (lambda x: x[1, 1].__setitem__(..., 1) or x, "maze 1 .* start \\(green\\)"),                # no start left
    (lambda x: x[0, :, 1, 1].__setitem__(..., [0, 1, 0]) or x, "maze 0 .* start"),              # a second start
    (lambda x: np.where(((x[:, 0] == 1) & (x[:, 1] == 0))[:, None], 1, x).astype(np.uint8), "maze 0 .* end \\(red\\)"),
])
def test_mazes_need_exactly_one_start_and_one_end(tmp_path, damage, match):
    x, y = generate_mazes(3, 5, seed=1)
    x = damage(np.array(x, dtype=np.uint8))
    with pytest.raises(MazeDataError, match=match):
        save_mazes(tmp_path / "m.npz", x, y)


# ---- 5. outputs never replace data without --force ------------------------------------------------

def test_data_out_refuses_existing_unless_force(tmp_path, capsys):
    out = tmp_path / "mz"
    argv = ["data", "mazes", "--size", "5", "--n", "2", "--out", str(out)]
    assert main(argv) == 0
    line = _user_error(capsys, argv, "data")
    assert str(out) in line and "--force" in line
    assert main(argv + ["--force"]) == 0
    (tmp_path / "f.npz").write_bytes(b"keep")
    assert "--force" in _user_error(capsys, ["data", "pathfinder", "--n", "2", "--out", str(tmp_path / "f.npz")],
                                    "data")
    assert (tmp_path / "f.npz").read_bytes() == b"keep"
    assert "--out is empty" in _user_error(capsys, ["data", "mazes", "--size", "5", "--n", "2", "--out", ""], "data")


# ---- 6. the command line -------------------------------------------------------------------------

def test_overrides_after_options(tmp_path, capsys):
    cfg = _cfg_file(tmp_path)
    assert main(["train", str(cfg), "--no-progress", "epochs=1"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 1
    assert main(["train", str(cfg), "--resume", "--no-progress", "epochs=1"]) == 0
    with pytest.raises(SystemExit):
        main(["train", str(cfg), "--no-progress", "--bogus"])


@pytest.mark.parametrize("exc, rc, match", [
    (MemoryError(), 2, "error: out of memory"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (OSError(28, "No space left on device"), 2, "No space left on device"),
    (ValueError("bad\n  two lines"), 2, "error: bad two lines"),
    (pytest.importorskip("PIL.Image").DecompressionBombError("image too large"), 2, "error: image too large"),
])
def test_expected_errors_are_one_line(monkeypatch, capsys, exc, rc, match):
    def boom(args):
        raise exc
    monkeypatch.setattr("convrnn.cli.cmd_list", boom)
    assert match in _user_error(capsys, ["list"], "list", rc=rc)


def test_bugs_and_debug_show_tracebacks(monkeypatch):
    def bug(args):
        raise KeyError("a real bug")
    monkeypatch.setattr("convrnn.cli.cmd_list", bug)
    with pytest.raises(KeyError):
        main(["list"])

    def user(args):
        raise ValueError("user error")
    monkeypatch.setattr("convrnn.cli.cmd_list", user)
    with pytest.raises(ValueError):
        main(["--debug", "list"])
    with pytest.raises(ValueError):
        main(["list", "--debug"])


def test_state_dict_mismatch_keeps_names_and_shapes(tmp_path):
    save_model(tmp_path / "w.safetensors", convrnn.create_model("dtnet_recall_mazes", width=8, steps=3))
    with pytest.raises(CheckpointError) as e:
        init_from(convrnn.create_model("dtnet_recall_mazes", width=16, steps=3), str(tmp_path / "w.safetensors"))
    msg = str(e.value)
    assert "\n" not in msg and "size mismatch for" in msg and "torch.Size([8" in msg and "torch.Size([16" in msg


def test_mri_model_evaluated_as_mazes_names_the_task(tmp_path, capsys):
    save_model(tmp_path / "mri" / "model.safetensors", convrnn.create_model("pcrnn"))
    line = _user_error(capsys, ["eval", str(tmp_path / "mri"), "--no-progress", "--out", str(tmp_path / "e")], "eval")
    assert "this is an MRI model; use --task mri" in line


def test_allow_pickle_hint_names_the_file(tmp_path):
    from convrnn.cli import _predictivity_inputs
    p = tmp_path / "resp.npy"
    with open(p, "wb") as f:     # an object array whose header passes as numeric nowhere
        np.save(f, np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="resp.npy"):
        _predictivity_inputs(argparse.Namespace(responses=str(p)))


@pytest.mark.parametrize("make", [
    lambda h: h.Convergence(tol=float("nan")), lambda h: h.Convergence(tol=float("inf")),
    lambda h: h.Convergence(tol=0.0), lambda h: h.ACT(eps=float("nan")),
    lambda h: h.PonderNet(threshold=float("nan")), lambda h: h.Confidence(threshold=float("nan")),
    lambda h: h.AnswerDynamics(threshold=float("nan"))])
def test_halting_parameters_must_be_finite(make):
    """A NaN tolerance or threshold would never (or always) halt: refused when the policy is built."""
    import convrnn.halting as h
    with pytest.raises(ValueError, match="must be"):
        make(h)


def test_cells_check_input_and_state_once_per_forward():
    """A NaN input or state is refused by a cell called directly (with a state too), and by the models once
    per forward; inside a model's own loop the cells do not scan again (finite_checks_off)."""
    import torch

    import convrnn
    from convrnn.errors import finite_checks_off
    nan = torch.full((1, 4, 6, 6), float("nan"))
    for name in convrnn.list_cells():
        cell = convrnn.create_cell(name, in_channels=4, hidden_channels=4)
        x = torch.rand(1, 4, 6, 6)
        _, state = cell(x)
        with pytest.raises(ValueError, match="NaN or inf"):
            cell(nan, state)                                    # input, with a state given
        bad = convrnn.halting.map_state(state, lambda s: torch.full_like(s, float("nan")) if s.is_floating_point()
                                        else s) if hasattr(convrnn.halting, "map_state") else None
        if bad is not None:
            with pytest.raises(ValueError, match="state: contains NaN"):
                cell(x, bad)
        with finite_checks_off():
            cell(nan, state)                                    # the models' loops skip the scan
    model = convrnn.create_model("dtnet_recall_mazes", width=4, steps=2)
    out = model(torch.rand(1, 3, 12, 12), steps=2)
    with pytest.raises(ValueError, match="state: contains NaN"):
        model(torch.rand(1, 3, 12, 12), steps=2, state=torch.full_like(out.state, float("nan")))
    seq = convrnn.ConvRNN("convgru", 3, 4)
    with pytest.raises(ValueError, match="ConvRNN input: contains NaN"):
        seq(torch.full((1, 2, 3, 6, 6), float("nan")))
