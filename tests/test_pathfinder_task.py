"""PathFinder glue: models, trainer, evaluator (the generator itself is in test_pathfinder.py)."""
import json

import numpy as np
import pytest
import torch

import convrnn
from convrnn.cli import main
from convrnn.config import TrainConfig
from convrnn.evaluate import spearman
from convrnn.tasks import get_task
from convrnn.train import train


@pytest.mark.parametrize("name", ["adrnn_locrnn_pathfinder", "adrnn_convgru_pathfinder", "adrnn_hgru_pathfinder",
                                  "adrnn_resnet_pathfinder"])
def test_pathfinder_models_classify_one_channel_images(name):
    m = convrnn.create_model(name, width=4).eval()
    with torch.no_grad():
        out = m(torch.rand(3, 1, 32, 32), steps=3, halting="act")
    assert out.output.shape == (3, 2) and out.steps.shape == (3,)
    assert m.config.head == "maxpool" and isinstance(m.readout.fc, torch.nn.Linear)


def test_task_data_scaling_labels_and_presets():
    task = get_task("pathfinder", preset="lra32")
    x, y = task.eval_data(14, 6, seed=3)
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
    assert y.tolist().count(1) == 3
    with pytest.raises(ValueError, match="unknown PathFinder preset 'lra33'"):
        get_task("pathfinder", preset="lra33")
    cfg = TrainConfig.from_dict({"task": "pathfinder", "data_kwargs": {"preset": "lra32", "size": 3}})
    with pytest.raises(ValueError, match="unknown key"):
        get_task("pathfinder", **cfg.data_kwargs)


def test_tiny_pathfinder_run_fits_its_training_images(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(dict(
        task="pathfinder", model="adrnn_resnet_pathfinder", model_kwargs={"width": 8, "steps": 3},
        data_kwargs={"preset": "lra32"}, train_size=6, n_train=32, n_val=32, epochs=60, batch_size=32,
        lr=0.01, warmup_epochs=2, steps=3, loss="final", device="cpu", channels_last=False, amp="none",
        out_dir=str(tmp_path / "run"), ckpt_every=1000, log_every=10, eval_every=1000, seed=0))
    train(cfg, progress=False)
    model = convrnn.checkpoint.load_model(tmp_path / "run")
    task = get_task("pathfinder")
    (x, y), _ = task.datasets(cfg)
    with torch.no_grad():
        acc = task.correct(model(x, steps=3).output, y, x).float().mean().item()
    assert acc >= 0.8   # chance is 0.5: the loop, loss and readout learn


def test_spearman_matches_definition():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.8944271909999159)  # average ranks for ties
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_eval_pathfinder_reports_lengths_and_spearman(tmp_path, capsys):
    m = convrnn.create_model("adrnn_convgru_pathfinder", width=4)
    convrnn.checkpoint.save_model(tmp_path / "m.safetensors", m)
    code = main(["eval", str(tmp_path / "m.safetensors"), "--task", "pathfinder", "--lengths", "6,9", "--n", "4",
                 "--max-steps", "3", "--out", str(tmp_path / "ev"), "--device", "cpu", "--no-progress"])
    assert code == 0
    res = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert res["task"] == "pathfinder" and set(res["levels"]) == {"6", "9"}
    assert "spearman_steps_vs_level" in res
    assert (tmp_path / "ev" / "examples.png").read_bytes()[:4] == b"\x89PNG"
