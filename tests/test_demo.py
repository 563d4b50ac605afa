"""The README's main job, on its quick setting, with the bundled model."""
import json

import pytest
import torch

import convrnn
from convrnn.cli import main


def test_quick_demo_solves_mazes_and_thinks_longer_on_bigger_ones(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    levels = result["levels"]
    assert set(levels) == {"9", "13"} and result["model"] == "adrnn_mazes"
    learned = {k: v["policies"]["learned"] for k, v in levels.items()}
    stable = {k: v["policies"]["stable"] for k, v in levels.items()}
    assert learned["9"]["accuracy"] == 1.0 and learned["13"]["accuracy"] == 1.0
    assert stable["9"]["accuracy"] == 1.0 and stable["13"]["accuracy"] == 1.0
    assert learned["13"]["mean_steps"] > learned["9"]["mean_steps"]
    assert len(learned["9"]["steps_per_sample"]) == levels["9"]["n"] and learned["9"]["hit_cap"] == 0
    for v in levels.values():            # the fixed-step curve reaches past every halted maze; best fixed read off it
        assert len(v["curve"]) >= max(v["policies"]["learned"]["steps_per_sample"])
        assert v["best_fixed_accuracy"] == max(v["curve"]) == v["curve"][v["best_fixed_steps"] - 1]
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "13x13" in page      # 3 maze + 3 PathFinder figures
    assert "learned: accuracy" in page and "best fixed" in page
    pf = json.loads((tmp_path / "pathfinder" / "demo.json").read_text())
    assert pf["model"] == "adrnn_pathfinder" and pf["halting"] == "learned" and set(pf["levels"]) == {"9", "14"}
    assert pf["levels"]["9"]["accuracy"] >= 0.75 and pf["levels"]["14"]["accuracy"] >= 0.75
    assert "PathFinder" in page and (tmp_path / "pathfinder" / "fill_step_by_step.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "report:" in out and "Spearman correlation of steps with contour length" in out


def test_bundled_model_loads_offline_and_refuses_overrides():
    m = convrnn.create_model("dtnet_mazes_w64", pretrained=True)
    assert m.config.width == 64 and sum(p.numel() for p in m.parameters()) == 243921
    with pytest.raises(ValueError, match="create it without overrides"):
        convrnn.create_model("dtnet_mazes_w64", pretrained=True, width=32)
    fresh = convrnn.create_model("dtnet_mazes_w64")
    assert not torch.equal(fresh.encoder[0].weight, m.encoder[0].weight)


def test_bundled_model_accepts_a_new_default_step_count():
    m = convrnn.create_model("dtnet_mazes_w64", pretrained=True, steps=90)
    assert m.config.steps == 90
    ref = convrnn.create_model("dtnet_mazes_w64", pretrained=True)
    assert torch.equal(m.encoder[0].weight, ref.encoder[0].weight)


def test_quick_demo_in_bf16_solves_the_same_mazes(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--device", "cpu", "--amp", "bf16"]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["amp"] == "bf16"
    assert all(v["policies"]["learned"]["accuracy"] == 1.0 for v in result["levels"].values())
