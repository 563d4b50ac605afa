"""`convrnn analyze ...` on a tiny feedback network trained for a few optimizer steps on digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli

from convrnn.cli import main

pytest.importorskip("sklearn")
STEPS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "run"
    code = main(["train", "--no-progress", "mazes_cpu", "task=classification", "model=greco_fb",
                 "model_kwargs={width: 0.125, in_channels: 1, num_classes: 10}",
                 "data_kwargs={dataset: digits, size: 16}",
                 "loss=all_steps", f"steps={STEPS}", "epochs=1", "batch_size=256", "lr=0.01", "time_limit=null",
                 "num_threads=1", f"out_dir={out}"])
    assert code == 0
    return out


def _analyze(args, run, out):
    return main(["analyze", *args, str(run), "--n", "40", "--out", str(out), "--device", "cpu"])


def test_robustness_subcommands_share_one_json(run, tmp_path, capsys):
    assert _analyze(["speed-accuracy"], run, tmp_path) == 0
    assert _analyze(["noise", "--levels", "0,0.3"], run, tmp_path) == 0
    assert _analyze(["adversarial", "--attack", "fgsm", "--eps", "0,0.05"], run, tmp_path) == 0
    res = json.loads((tmp_path / "robustness.json").read_text())
    assert set(res) == {"speed_accuracy", "noise_gaussian", "adversarial_fgsm"}
    assert len(res["speed_accuracy"]["accuracy"]) == STEPS and res["speed_accuracy"]["n"] == 40
    assert res["noise_gaussian"]["accuracy"][0] == res["speed_accuracy"]["accuracy"]   # level 0 = clean
    assert res["adversarial_fgsm"]["accuracy"][0] == res["speed_accuracy"]["final"]
    assert res["adversarial_fgsm"]["accuracy"][1] <= res["adversarial_fgsm"]["accuracy"][0]
    for name in res:
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert "eps 0.05" in capsys.readouterr().out


def test_geometry_subcommand(run, tmp_path):
    assert _analyze(["geometry", "--probe-steps", "3", "--folds", "2", "--areas", "L2,L3"], run, tmp_path) == 0
    rep = json.loads((tmp_path / "geometry.json").read_text())
    assert rep["analysis"] == "geometry" and list(rep["areas"]) == ["L2", "L3"] and rep["n"] == 40
    assert rep["areas"]["L2"]["probe_accuracy"][:2] == [None, None]
    assert (tmp_path / "geometry.png").stat().st_size > 0


def test_bf16_analyses_close_to_fp32_and_divergence_exact(run, tmp_path):
    """--amp bf16: accuracies within bf16 noise of fp32; the divergence (eps-sized differences) always
    runs in fp32, so it is identical."""
    res = {}
    for amp in ("none", "bf16"):
        out = tmp_path / amp
        assert _analyze(["speed-accuracy", "--amp", amp], run, out) == 0
        assert _analyze(["geometry", "--probe-steps", "3", "--folds", "2", "--areas", "L2", "--amp", amp], run, out) == 0
        res[amp] = (json.loads((out / "robustness.json").read_text())["speed_accuracy"],
                    json.loads((out / "geometry.json").read_text()))
    (sa32, geo32), (sa16, geo16) = res["none"], res["bf16"]
    assert np.allclose(sa16["accuracy"], sa32["accuracy"], atol=0.1)
    assert geo16["divergence"] == geo32["divergence"]
    assert np.allclose(geo16["areas"]["L2"]["participation_ratio"], geo32["areas"]["L2"]["participation_ratio"],
                       rtol=0.2)


def test_predictivity_subcommand_and_bad_input(run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((30, 1, 16, 16)).astype(np.float32)
    resp = rng.standard_normal((2, 30, 5, 2))
    np.savez(tmp_path / "r.npz", responses=resp, images=images)
    assert _analyze(["predictivity", "--responses", str(tmp_path / "r.npz"), "--folds", "3"], run, tmp_path / "o") == 0
    rep = json.loads((tmp_path / "o" / "predictivity.json").read_text())
    assert rep["n_stimuli"] == 30 and rep["n_reps"] == 2 and len(rep["best"]) == 2
    assert np.array(rep["areas"]["L1"]["ev_median"]).shape == (STEPS, 2)
    assert (tmp_path / "o" / "predictivity.png").is_file()
    np.save(tmp_path / "bad.npy", resp[0, :, :, 0])
    capsys.readouterr()
    assert _analyze(["predictivity", "--responses", str(tmp_path / "bad.npy")], run, tmp_path) == 2
    err = capsys.readouterr().err
    assert "convrnn analyze: error:" in err and "(stimuli, neurons, time bins)" in err
    np.savez(tmp_path / "mis.npz", responses=resp, images=images[:7])
    assert _analyze(["predictivity", "--responses", str(tmp_path / "mis.npz")], run, tmp_path) == 2
    assert "(stimuli=30, C, H, W)" in capsys.readouterr().err
    assert _analyze(["geometry", "--areas", "V9"], run, tmp_path) == 2
    assert "unknown area 'V9'" in capsys.readouterr().err


def test_console_entry_predictivity_with_held_out_digits(run, tmp_path):
    """The real entry point; without images the stimuli are the first held-out digits."""
    np.save(tmp_path / "resp.npy", np.random.default_rng(1).standard_normal((25, 3, 2)))
    r = run_cli(["analyze", "predictivity", str(run), "--responses", "resp.npy", "--areas", "L3", "--folds", "2",
                 "--out", "p", "--device", "cpu", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["n_reps"] is None and rep["best_measure"] == "ev_median" and list(rep["areas"]) == ["L3"]
