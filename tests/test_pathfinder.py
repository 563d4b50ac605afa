"""Tests for convrnn.tasks.pathfinder: generator invariants, no distance shortcut, I/O, CLI."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convrnn.tasks.pathfinder import (
    PRESETS,
    PathfinderDataError,
    PathfinderGenerationError,
    PathfinderPreset,
    distance_only_accuracy,
    generate_pathfinder,
    load_pathfinder,
    marker_distance,
    save_pathfinder,
)

NB8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


# ---------------------------------------------------------------------------------------------
# independent helpers
# ---------------------------------------------------------------------------------------------


def component(ink: np.ndarray, start) -> set:
    """8-connected component of ``ink`` (bool (S, S)) containing ``start``; pure python BFS."""
    S = ink.shape[0]
    r, c = int(start[0]), int(start[1])
    assert ink[r, c], "a marker centre must lie on ink"
    seen = {(r, c)}
    q = deque([(r, c)])
    while q:
        y, x = q.popleft()
        for dy, dx in NB8:
            v = (y + dy, x + dx)
            if 0 <= v[0] < S and 0 <= v[1] < S and ink[v] and v not in seen:
                seen.add(v)
                q.append(v)
    return seen


def touching_pairs(ids: np.ndarray) -> int:
    """Number of 8-adjacent pixel pairs owned by two different contours."""
    S = ids.shape[0]
    p = np.pad(ids.astype(np.int64), 1)
    bad = 0
    for dy, dx in NB8:
        sh = p[1 + dy:1 + dy + S, 1 + dx:1 + dx + S]
        bad += int(((ids > 0) & (sh > 0) & (ids != sh)).sum())
    return bad


def check_image(d, i, dense=True):
    img, ids, lab, mk = d["images"][i], d["contours"][i], int(d["labels"][i]), d["markers"][i]
    S = img.shape[0]
    assert mk.min() >= 0 and mk.max() < S
    # the contour map partitions exactly the rendered ink
    assert np.array_equal(img > 0, ids > 0)
    # contours (markers included) never touch: dilating one by a 3x3 square never meets another
    assert touching_pairs(ids) == 0
    # label recomputed from the rendered image: the 8-connected ink component of each marker
    # lies on a single contour (so connectivity never leaks across contours) ...
    c0 = component(img > 0, mk[0])
    c1 = component(img > 0, mk[1])
    o0 = {int(ids[p]) for p in c0}
    o1 = {int(ids[p]) for p in c1}
    assert len(o0) == 1 and len(o1) == 1
    (a,), (b,) = o0, o1
    # ... and the markers sit on the two target contours (ids 1 and 2)
    assert a in (1, 2) and b in (1, 2)
    assert lab == int(a == b)
    # joining the components of one contour (all of its ink pixels) links the markers iff positive
    tgt = ids == a
    assert bool(tgt[tuple(mk[1])]) == bool(lab)
    if dense:
        dm = d["dense"][i].astype(bool)
        assert np.array_equal(dm, tgt)          # the contour the first marker sits on
        assert not (dm & (img == 0)).any()      # dense pixels lie on ink
        assert dm[tuple(mk[0])]                 # and contain (touch) the first marker
        assert dm[tuple(mk[1])] == bool(lab)


# ---------------------------------------------------------------------------------------------
# generator invariants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,length", [("lra32", 14), ("classic150", 14), ("lra128", 9), ("lra256", 6),
                                            ("lra64", 6), ("classic150", 24)])
def test_invariants(preset, length):
    d = generate_pathfinder(12, length, preset, seed=3, dense=True, return_contours=True)
    S = PRESETS[preset].out_size
    assert d["images"].shape == (12, S, S) and d["images"].dtype == np.uint8
    assert d["labels"].dtype == np.int64 and d["markers"].shape == (12, 2, 2) and d["markers"].dtype == np.int64
    assert d["dense"].shape == (12, S, S) and d["dense"].dtype == np.uint8
    assert int(d["labels"].sum()) == 6
    for i in range(12):
        check_image(d, i)
    # anti-aliased: intermediate grey levels occur, and full-intensity ink too
    img = d["images"]
    assert ((img > 0) & (img < 255)).any() and (img == 255).any()
    # both target contours are present in every image, plus distractors where they fit
    for i in range(12):
        assert {1, 2} <= set(np.unique(d["contours"][i]).tolist())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**63), length=st.integers(3, 16), preset=st.sampled_from(["lra32", "classic150", "lra128"]),
       n=st.integers(1, 7))
def test_invariants_property(seed, length, preset, n):
    d = generate_pathfinder(n, length, preset, seed=seed, dense=True, return_contours=True)
    for i in range(n):
        check_image(d, i)
    assert abs(int(d["labels"].sum()) - n / 2) <= 0.5


def test_labels_balanced_in_pairs():
    for n in (2, 10, 101):
        y = generate_pathfinder(n, 6, "lra32", seed=11)["labels"]
        assert set(np.unique(y).tolist()) <= {0, 1}
        assert abs(int(y.sum()) - n / 2) <= 0.5
        assert (y[0:n - 1:2] != y[1:n:2]).all()
    y = generate_pathfinder(400, 6, "lra32", seed=5)["labels"]
    assert int(y.sum()) == 200
    assert 0.3 < y[0::2].mean() < 0.7  # the order within pairs is random, not alternating


def test_deterministic_and_prefix():
    a = generate_pathfinder(6, 9, "lra32", seed=7, dense=True)
    b = generate_pathfinder(6, 9, "lra32", seed=7, dense=True)
    c = generate_pathfinder(15, 9, "lra32", seed=7, dense=True)
    for k in ("images", "labels", "markers", "dense"):
        assert np.array_equal(a[k], b[k])
        assert np.array_equal(a[k], c[k][:6])
    e = generate_pathfinder(6, 9, "lra32", seed=8)
    assert not np.array_equal(a["images"], e["images"])
    assert a["images"][0].tobytes() != a["images"][1].tobytes()
    # the dense flag does not change the images
    f = generate_pathfinder(6, 9, "lra32", seed=7)
    assert np.array_equal(f["images"], a["images"]) and "dense" not in f


def test_empty_and_bad_args():
    d = generate_pathfinder(0, 14, "lra32")
    assert d["images"].shape == (0, 32, 32) and d["labels"].shape == (0,)
    with pytest.raises(ValueError, match="length"):
        generate_pathfinder(2, 2, "lra32")
    with pytest.raises(ValueError, match="n must"):
        generate_pathfinder(-1, 6, "lra32")
    with pytest.raises(ValueError, match="lra64"):
        generate_pathfinder(2, 6, "lra46")
    with pytest.raises(TypeError):
        generate_pathfinder(2, 6, "lra32", seed=1.5)
    with pytest.raises(PathfinderGenerationError, match="length 40"):
        generate_pathfinder(1, 40, "lra32")


@pytest.mark.parametrize("preset, length", [("lra32_48", 21), ("lra32_48", 30), ("lra32_64", 24), ("lra32_64", 30)])
def test_large_lra32_canvases_hold_long_contours_without_touching(preset, length):
    """lra32's paddles on 48 / 64 px canvases: contours of length 21-30 fit, keep every invariant
    (different contours never 8-adjacent, both target contours present) and share lra32's paddle size."""
    d = generate_pathfinder(8, length, preset, seed=3, dense=True, return_contours=True)
    for i in range(8):
        check_image(d, i)
    p, q = PRESETS[preset], PRESETS["lra32"]
    assert (p.paddle_length, p.paddle_thickness, p.paddle_margin, p.marker_radius) == \
        (q.paddle_length, q.paddle_thickness, q.paddle_margin, q.marker_radius)
    assert p.scale == q.scale         # the same pixels per drawing unit: the same paddles in pixels


def test_custom_preset_and_validation():
    p = PathfinderPreset(48, 48, 3, 3, 1, 1, 2, 1.5, 8, 12, antialias=3)
    d = generate_pathfinder(4, 6, p, seed=1, return_contours=True)
    assert d["images"].shape == (4, 48, 48)
    for i in range(4):
        check_image(d, i, dense=False)
    with pytest.raises(ValueError, match="padding"):
        generate_pathfinder(1, 6, PathfinderPreset(48, 48, 1, 3, 1, 1, 2, 1.5, 8, 12))
    assert PRESETS["classic150"].num_distractors(14) == 7
    assert PRESETS["lra32"].num_distractors(14) == 5
    assert PRESETS["classic150"].draw_size == 300 and PRESETS["classic150"].out_size == 150


# ---------------------------------------------------------------------------------------------
# no marker-distance shortcut
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,length", [("lra32", 14), ("classic150", 6), ("classic150", 14), ("lra32_48", 24),
                                           ("lra32_64", 30)])
def test_distance_only_classifier_at_chance(preset, length):
    d = generate_pathfinder(600, length, preset, seed=2024)
    acc = distance_only_accuracy(d["markers"], d["labels"])
    assert acc["best"] <= 0.58, acc
    dist = marker_distance(d["markers"])
    y = d["labels"]
    # the two classes' distance distributions agree (means within 2 px, medians within 3 px)
    assert abs(dist[y == 1].mean() - dist[y == 0].mean()) < 2.0
    assert abs(np.median(dist[y == 1]) - np.median(dist[y == 0])) < 3.0


def test_distance_classifier_detects_a_shortcut():
    # sanity check of the checker: a planted distance shortcut is found
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    m = np.zeros((600, 2, 2), np.int64)
    m[:, 1, 1] = np.where(y == 1, rng.integers(5, 15, 600), rng.integers(10, 30, 600))
    assert distance_only_accuracy(m, y)["best"] > 0.75


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return generate_pathfinder(10, 9, "lra32", seed=4, dense=True)


def test_lra_folder_round_trip(tmp_path, small):
    out = save_pathfinder(tmp_path / "pf", small, "lra", batch_size=4, length=9)
    assert sorted(p.name for p in (out / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    assert (out / "imgs" / "2" / "sample_1.png").is_file()
    line = (out / "metadata" / "1.npy").read_text().splitlines()[0].split()
    assert line[:2] == ["imgs/1", "sample_0.png"] and int(line[3]) == small["labels"][4]
    d = load_pathfinder(out)
    assert np.array_equal(d["images"], small["images"])
    assert np.array_equal(d["labels"], small["labels"])
    assert np.array_equal(d["markers"], small["markers"])
    assert d["files"][5] == "imgs/1/sample_1.png"
    assert not list(out.rglob("*.tmp"))


def test_npz_round_trip(tmp_path, small):
    p = save_pathfinder(tmp_path / "a" / "pf.npz", small)
    d = load_pathfinder(p)
    for k in ("images", "labels", "markers", "dense"):
        assert np.array_equal(d[k], small[k]) and d[k].dtype == small[k].dtype
    with pytest.raises(ValueError, match=".npz"):
        save_pathfinder(tmp_path / "pf.bin", small)
    with pytest.raises(ValueError, match="fmt"):
        save_pathfinder(tmp_path / "x", small, "png")
    with pytest.raises(PathfinderDataError, match="labels"):
        save_pathfinder(tmp_path / "b.npz", {"images": small["images"], "labels": small["labels"][:3]})


def test_reads_lra_generator_metadata(tmp_path):
    """A folder as LRA ships it: foreign trailing fields, no marker coordinates."""
    from PIL import Image
    (tmp_path / "imgs" / "3").mkdir(parents=True)
    (tmp_path / "metadata").mkdir()
    rows = []
    for j, lab in enumerate([1, 0, 1]):
        Image.fromarray(np.full((32, 32), 40 * j, np.uint8), mode="L").save(tmp_path / "imgs" / "3" / f"sample_{j}.png")
        rows.append(f"imgs/3 sample_{j}.png {j} {lab} 1.0 14 4 2 0.5 1 1")
    (tmp_path / "metadata" / "3.npy").write_text("\n".join(rows) + "\n")
    d = load_pathfinder(tmp_path)
    assert d["images"].shape == (3, 32, 32) and d["labels"].tolist() == [1, 0, 1]
    assert "markers" not in d
    assert d["images"][2, 0, 0] == 80


def test_loader_errors(tmp_path, small):
    out = save_pathfinder(tmp_path / "pf", small, "lra", batch_size=4)
    # corrupt PNG
    bad = out / "imgs" / "1" / "sample_2.png"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(PathfinderDataError, match="sample_2.png"):
        load_pathfinder(out)
    bad.write_bytes(b"not a png at all")
    with pytest.raises(PathfinderDataError, match="corrupt"):
        load_pathfinder(out)
    # missing image
    bad.unlink()
    with pytest.raises(PathfinderDataError, match="missing image"):
        load_pathfinder(out)
    # malformed metadata line / label
    out2 = save_pathfinder(tmp_path / "pf2", small, "lra", batch_size=100)
    meta = out2 / "metadata" / "0.npy"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:3] + ["imgs/0 sample_3.png 3"] + lines[4:]) + "\n")
    with pytest.raises(PathfinderDataError, match=r"0.npy, line 4"):
        load_pathfinder(out2)
    meta.write_text("\n".join(lines[:3] + ["imgs/0 sample_3.png 3 7 9"] + lines[4:]) + "\n")
    with pytest.raises(PathfinderDataError, match="label"):
        load_pathfinder(out2)
    meta.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PathfinderDataError, match="0.npy"):
        load_pathfinder(out2)
    # missing metadata
    meta.unlink()
    with pytest.raises(PathfinderDataError, match="metadata"):
        load_pathfinder(out2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PathfinderDataError, match="metadata"):
        load_pathfinder(tmp_path / "empty")
    # npz: missing, truncated, missing key
    with pytest.raises(PathfinderDataError, match="not found"):
        load_pathfinder(tmp_path / "nope.npz")
    p = save_pathfinder(tmp_path / "pf.npz", small)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(PathfinderDataError, match="pf.npz"):
        load_pathfinder(p)
    q = tmp_path / "q.npz"
    np.savez(q, images=small["images"])
    with pytest.raises(PathfinderDataError, match="labels"):
        load_pathfinder(q)
    assert issubclass(PathfinderDataError, ValueError)


def main(args):
    from convrnn.cli import main as cli_main
    return cli_main(["data", "pathfinder", "--out", args[0], *args[1:]])


def test_cli(tmp_path, capsys):
    assert main([str(tmp_path / "d.npz"), "-n", "6", "--length", "6", "--preset", "lra32", "--dense"]) == 0
    d = load_pathfinder(tmp_path / "d.npz")
    assert d["images"].shape == (6, 32, 32) and "dense" in d
    assert np.array_equal(d["images"], generate_pathfinder(6, 6, "lra32")["images"])
    assert main([str(tmp_path / "f"), "-n", "4", "--length", "6", "--batch-size", "2"]) == 0
    assert load_pathfinder(tmp_path / "f")["images"].shape == (4, 32, 32)
    assert main([str(tmp_path / "g.npz"), "-n", "2", "--length", "2"]) == 2
    assert "length" in capsys.readouterr().err


def test_crossing_distractors_cross_targets_but_never_markers():
    """``crossing=True``: distractors touch and cross the other contours (as the original generator's do),
    the two target contours still never touch, and no distractor comes near a marker."""
    import dataclasses
    p = dataclasses.replace(PRESETS["lra32"], crossing=True)
    d = generate_pathfinder(60, 14, p, seed=5, dense=True, return_contours=True)
    plain = generate_pathfinder(60, 14, "lra32", seed=5, return_contours=True)
    crossed = 0
    for i in range(60):
        ids, mk, lab = d["contours"][i], d["markers"][i], int(d["labels"][i])
        assert np.array_equal(d["images"][i] > 0, ids > 0)
        targets = np.where(ids <= 2, ids, 0)
        assert touching_pairs(targets) == 0                    # the two targets keep their gap
        near = np.pad(np.isin(ids, (1, 2)), 1)
        near = np.any([near[1 + dy:33 + dy, 1 + dx:33 + dx] for dy, dx in NB8], 0)
        crossed += bool((near & (ids >= 3)).any())
        for r, c in mk:                                         # a marker's 5x5 surroundings: its contour only
            win = ids[max(0, r - 2):r + 3, max(0, c - 2):c + 3]
            assert set(np.unique(win)) <= {0, 1, 2} and len(set(np.unique(win)) - {0}) == 1
        owners = [int(np.bincount(ids[max(0, r - 1):r + 2, max(0, c - 1):c + 2].ravel()).argmax()) for r, c in mk]
        assert lab == int(owners[0] == owners[1])
    assert crossed >= 50, "most images have a distractor touching or crossing a target contour"
    assert all(touching_pairs(plain["contours"][i]) == 0 for i in range(60))
    acc = distance_only_accuracy(d["markers"], d["labels"])
    assert acc["best"] <= 0.62, acc
