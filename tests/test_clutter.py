"""The cluttered-glyph benchmark: generator determinism, labels, each knob doing what it says, loaders,
the task glue and the CLI."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from convrnn.tasks.clutter import (LEVELS, MAX_LEVEL, generate_clutter, glyph_atlas, level_knobs,  # noqa: E402
                                   load_clutter, write_clutter)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**40), start=st.integers(0, 10_000), a=st.integers(0, 6), b=st.integers(1, 6),
       level=st.integers(0, MAX_LEVEL))
def test_an_image_depends_only_on_seed_and_index(seed, start, a, b, level):
    whole = generate_clutter(a + b, 24, level, seed, start, masks=True)
    part = generate_clutter(b, 24, level, seed, start + a, masks=True)
    for k in ("images", "labels", "occluded", "masks"):
        np.testing.assert_array_equal(whole[k][a:], part[k])


def test_different_seeds_give_different_images_and_balanced_labels():
    d0, d1 = generate_clutter(2000, 32, 3, seed=0), generate_clutter(2000, 32, 3, seed=1)
    assert (d0["images"] != d1["images"]).any(axis=(1, 2, 3)).mean() > 0.99
    counts = np.bincount(d0["labels"], minlength=10)
    assert counts.min() > 150 and counts.max() < 250          # 10 classes, 2000 draws


def _templates(size=32):
    """Level 0 of every class and stroke variant: the clean centred glyphs."""
    t = {}
    for seed in range(40):
        d = generate_clutter(50, size, 0, seed)
        for img, lab in zip(d["images"][:, 0], d["labels"]):
            t.setdefault(int(lab), set()).add(img.tobytes())
    return t


def test_level_0_is_a_clean_centred_glyph_whose_class_is_the_label():
    d = generate_clutter(300, 32, 0, seed=5, masks=True)
    x = d["images"][:, 0].astype(float) / 255
    # no noise, no clutter: the only ink is the target's; its bounding box is centred on the canvas
    ink = d["masks"] > 0
    assert ((x > 0.5) <= ink | np.roll(ink, 1, 1) | np.roll(ink, -1, 1) | np.roll(ink, 1, 2) | np.roll(ink, -1, 2)).all()
    for axis in (1, 2):
        any_ink = ink.any(axis=3 - axis)
        first = any_ink.argmax(1)
        last = 31 - any_ink[:, ::-1].argmax(1)
        assert np.abs((first + last) / 2 - 15.5).max() <= 1.0
    # the label is recoverable: nearest template (the atlas glyph of each class rendered alone) is the label
    atlas, _, _ = glyph_atlas(24)
    protos = []
    for k in range(10):
        imgs = [np.frombuffer(b, np.uint8).reshape(32, 32).astype(float) for b in _templates()[k]]
        protos.append(np.mean(imgs, 0).ravel())
    protos = np.array(protos)
    flat = x.reshape(len(x), -1) * 255
    pred = np.argmin(((flat[:, None] - protos[None]) ** 2).sum(-1), 1)
    assert (pred == d["labels"]).mean() == 1.0
    assert atlas.shape[1] == 10


def test_labels_follow_the_stream_not_the_level():
    """The same (seed, index) draws the same digit at every level: a sweep compares like with like."""
    labs = [generate_clutter(100, 32, lv, seed=9)["labels"] for lv in range(MAX_LEVEL + 1)]
    for lab in labs[1:]:
        np.testing.assert_array_equal(lab, labs[0])


def test_occlusion_covers_the_requested_fraction_of_the_target_measured_from_masks():
    for want in (0.1, 0.3, 0.5):
        d = generate_clutter(400, 32, 0, seed=2, masks=True, occlusion=want)
        m = d["masks"]
        measured = (m == 2).sum((1, 2)) / (m > 0).sum((1, 2))
        np.testing.assert_allclose(measured, d["occluded"], atol=1e-6)
        assert (measured >= want - 1e-9).all()
        assert measured.mean() < want + 0.12               # overshoot at most about one square
        # the occluded ink is grey in the image (no noise at level 0)
        assert (d["images"][:, 0][m == 2] == round(0.5 * 255)).all()
    assert (generate_clutter(50, 32, 0, seed=2)["occluded"] == 0).all()


def test_clutter_and_debris_add_ink_off_the_target_and_noise_has_the_std_asked():
    def off_target_ink(**kw):
        d = generate_clutter(300, 32, 0, seed=4, masks=True, **kw)
        x = d["images"][:, 0] > 127
        near = d["masks"] > 0
        for ax in (1, 2):
            near = near | np.roll(near, 1, ax) | np.roll(near, -1, ax)
        return (x & ~near).sum((1, 2)).mean()
    base, c2, c4 = off_target_ink(), off_target_ink(clutter=2), off_target_ink(clutter=4)
    assert base == 0 and 0 < c2 < c4
    d2, d8 = off_target_ink(debris=2), off_target_ink(debris=8)
    assert 0 < d2 < d8 < c4 * 2
    # noise: the same images with and without noise differ by N(0, sigma^2) where not clipped
    clean = generate_clutter(200, 32, 0, seed=6)["images"].astype(float) / 255
    noisy = generate_clutter(200, 32, 0, seed=6, noise=0.1)["images"].astype(float) / 255
    mid = (clean > 0.35) & (clean < 0.65)                   # hardly ever clipped at sigma 0.1
    diff = (noisy - clean)[mid]
    assert abs(diff.std() - 0.1) < 0.01 and abs(diff.mean()) < 0.01
    assert ((noisy - clean)[clean == 0] >= 0).all()         # clipped at 0 on the background


def test_jitter_moves_the_target_and_levels_grow_harder():
    def spread(**kw):
        d = generate_clutter(300, 32, 0, seed=8, masks=True, **kw)
        ink = (d["masks"] > 0).astype(float)
        yy, _ = np.mgrid[:32, :32]
        return ((ink * yy).sum((1, 2)) / ink.sum((1, 2))).std()
    assert spread() < 1.0 < spread(jitter=1.0)
    keys = ("clutter", "debris", "occlusion", "noise", "jitter")
    for a, b in zip(LEVELS, LEVELS[1:]):
        assert all(b[k] >= a[k] for k in keys) and any(b[k] > a[k] for k in keys)


@pytest.mark.parametrize("bad, match", [
    (dict(level=7), "level must be an int in 0..6"),
    (dict(level=1.5), "level must be an int"),
    (dict(clutter=-1), "clutter must be an int in 0..64"),
    (dict(occlusion=0.95), r"occlusion must be a number in \[0.0, 0.9\]"),
    (dict(noise=float("nan")), "noise must be"),
    (dict(blur=1), "blur"),
])
def test_bad_knobs_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        level = bad.pop("level", 0)
        level_knobs(level, **bad)


def test_bad_generator_arguments_are_refused():
    with pytest.raises(ValueError, match="clutter size"):
        generate_clutter(3, 4)
    with pytest.raises(ValueError, match="clutter n"):
        generate_clutter(0)
    with pytest.raises(ValueError, match="clutter seed"):
        generate_clutter(3, seed=-1)


def test_64_px_uses_the_large_atlas_and_keeps_the_glyph_fraction():
    d = generate_clutter(100, 64, 0, seed=1, masks=True)
    rows = (d["masks"] > 0).any(2).sum(1)
    assert 0.4 * 64 < np.median(rows) < 0.7 * 64


def test_npz_and_folder_round_trip(tmp_path):
    p = write_clutter(tmp_path / "c.npz", 40, 32, level=2, seed=3)
    x, y, classes = load_clutter(p)
    d = generate_clutter(40, 32, 2, seed=3)
    np.testing.assert_array_equal(x, d["images"])
    np.testing.assert_array_equal(y, d["labels"])
    assert classes == list("0123456789")
    folder = write_clutter(tmp_path / "f", 25, 32, level=1, seed=3)
    xf, yf, cf = load_clutter(folder)
    assert cf == list("0123456789") and len(yf) == 25
    # ImageFolder order is by class then file: the same multiset of (image, label) pairs
    d = generate_clutter(25, 32, 1, seed=3)
    want = sorted((int(lab), img.tobytes()) for img, lab in zip(d["images"], d["labels"]))
    got = sorted((int(lab), img.tobytes()) for img, lab in zip(xf, yf))
    assert want == got


def test_corrupt_or_wrong_npz_is_refused_by_name(tmp_path):
    from convrnn.tasks.classification import ClassificationDataError
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ClassificationDataError, match="bad.npz"):
        load_clutter(bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((3, 32, 32), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ClassificationDataError, match=r"expected images \(N, 1, S, S\)"):
        load_clutter(wrong)


# ------------------------------------------------------------------------------------------------ task

def test_task_mixes_levels_equally_and_validates_on_another_stream():
    from convrnn.config import TrainConfig
    from convrnn.tasks import get_task
    task = get_task("clutter", size=24, levels=[0, 3])
    cfg = TrainConfig(task="clutter", data_kwargs={"size": 24, "levels": [0, 3]}, n_train=10, n_val=4, seed=1)
    (x, y), (xv, yv) = task.datasets(cfg)
    assert x.shape == (10, 1, 24, 24) and x.dtype.__str__() == "torch.float32" and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal((x[:5] * 255).round().numpy().astype(np.uint8),
                                  generate_clutter(5, 24, 0, 1)["images"])
    np.testing.assert_array_equal((x[5:] * 255).round().numpy().astype(np.uint8),
                                  generate_clutter(5, 24, 3, 1, start=10)["images"])
    assert not np.array_equal(xv[:2].numpy(), x[:2].numpy())
    xe, ye = task.eval_data(3, 6, seed=1)
    np.testing.assert_array_equal(ye.numpy(), generate_clutter(6, 24, 3, 1)["labels"])
    with pytest.raises(ValueError, match="levels"):
        get_task("clutter", levels=[9])
    with pytest.raises(ValueError, match="blur"):
        get_task("clutter", knobs={"blur": 1})
    with pytest.raises(ValueError, match="Valid keys: knobs, levels"):
        get_task("clutter", colour=1)


def test_tiny_training_run_learns_level_0_and_evaluates_per_level(tmp_path):
    """A small convnet learns clean digits (level 0) well above chance in a few hundred steps; eval
    reports every level asked."""
    import torch

    from convrnn.config import TrainConfig
    from convrnn.evaluate import evaluate
    from convrnn.train import train
    torch.manual_seed(0)
    cfg = TrainConfig(task="clutter", model="greco_ff", data_kwargs={"size": 16, "levels": [0]},
                      model_kwargs={"width": 0.25, "in_channels": 1, "num_classes": 10, "dropout": 0.0,
                                    "norm": "instance"},
                      n_train=640, n_val=100, epochs=2, batch_size=32, lr=0.005, steps=4, loss="all_steps",
                      out_dir=str(tmp_path / "run"), num_threads=1, eval_every=1000, log_every=1000)
    train(cfg, progress=False)
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert float(rows[-1].split(",")[4]) > 0.5
    from convrnn.checkpoint import load_model
    from convrnn.tasks import get_task
    model = load_model(tmp_path / "run")
    res = evaluate(model, get_task("clutter", size=16, levels=[0]), [0, 6], n=50, halting="fixed", max_steps=4,
                   seed=3, progress=False)
    acc = {k: r["accuracy"] for k, r in res["levels"].items()}
    assert set(acc) == {"0", "6"} and acc["0"] > acc["6"]
    json.dumps(res, default=str)


def test_cli_data_clutter(tmp_path, capsys):
    from convrnn.cli import main
    assert main(["data", "clutter", "--n", "12", "--level", "2", "--occlusion", "0.4", "--seed", "5",
                 "--out", str(tmp_path / "d.npz")]) == 0
    x, y, _ = load_clutter(tmp_path / "d.npz")
    d = generate_clutter(12, 32, 2, 5, occlusion=0.4)
    np.testing.assert_array_equal(x, d["images"])
    assert "occlusion=0.4" in capsys.readouterr().out
    assert main(["data", "clutter", "--n", "3", "--level", "2", "--out", str(tmp_path / "d.npz")]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["data", "clutter", "--n", "3", "--level", "9", "--force", "--out", str(tmp_path / "d.npz")]) == 2
    assert "level must be an int in 0..6" in capsys.readouterr().err


def test_tiny_experiment_grid_on_clutter_reports_accuracy_by_level(tmp_path):
    """The experiment runner on the clutter task: a feedforward and a recurrent condition at an equal
    parameter budget, accuracy per difficulty level in the analysis, the report's level table and figure."""
    from convrnn.experiment import ExperimentConfig, run_experiment
    exp = ExperimentConfig.from_dict(dict(
        name="tiny clutter",
        base=dict(task="clutter", model="greco_ff", data_kwargs={"size": 16, "levels": [0, 1]},
                  model_kwargs=dict(width=0.25, in_channels=1, num_classes=10, dropout=0.0, norm="instance"),
                  n_train=320, n_val=64, epochs=2, batch_size=32, lr=0.005, steps=4, loss="all_steps",
                  num_threads=1, channels_last=False, amp="none", log_every=1000, eval_every=1000),
        conditions={"feedforward": {"model_kwargs.cell": "elman",
                                    "model_kwargs.cell_kwargs": {"activation": "relu", "lateral": False}},
                    "gru": {}},
        equal_params={"reference": "gru", "knob": "width", "tolerance": 0.1},
        seeds=[0],
        analysis=dict(n=32, noise_levels=[0.0, 0.5], eps=0.05, area="L2", batch_size=64, levels=[0, 6],
                      level_n=40)))
    res = run_experiment(exp, tmp_path / "out", log=lambda m: None)
    p = res["aggregate"]
    assert abs(p["feedforward"]["params"] - p["gru"]["params"]) <= 0.1 * p["gru"]["params"]
    for cond in ("feedforward", "gru"):
        run = res["runs"][cond]["0"]
        accs = run["curves"]["levels"]
        assert len(accs) == 2 and run["metrics"]["acc_hardest"] == accs[-1]
        assert accs[0] > accs[1]          # level 0 (clean, memorisable glyphs) is easier than level 6
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| condition | level 0 | level 6 | hardest: 95% CI |" in report
    assert (tmp_path / "out" / "levels.png").is_file()
