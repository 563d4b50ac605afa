"""Maze families and the training mixture (issue 12): unique shortest paths with cycles, the mixture's
validity on its padded canvas, task options, fine-tuning init, and the default step cap."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from test_mazes import bfs_dist, check_path, check_spanning_tree, check_structure, degree, open_neighbours

from convrnn.tasks import Task
from convrnn.tasks.maze_task import MazeTask
from convrnn.tasks.mazes import FAMILIES, family_options, generate_grids, generate_mazes, generate_mixture, image_side


def count_shortest_paths(grid, s, e):
    """Slow literal count of the shortest paths from s to e (BFS with path counts)."""
    dist, count = {s: 0}, {s: 1}
    q = deque([s])
    while q:
        u = q.popleft()
        for v in open_neighbours(grid, *u):
            if v not in dist:
                dist[v], count[v] = dist[u] + 1, count[u]
                q.append(v)
            elif dist[v] == dist[u] + 1:
                count[v] += count[u]
    return count[e]


def test_unique_path_leaves_exactly_one_shortest_path_and_keeps_cycles():
    n, size = 60, 13
    mz = generate_grids(n, size, seed=3, start_dead_end=False, cycles=0.1, unique_path=True)
    plain = generate_grids(n, size, seed=3, start_dead_end=False, cycles=0.1)
    m = (size + 1) // 2
    with_cycles = ties_before = 0
    for i in range(n):
        grid, path = mz.grid[i].tolist(), mz.path[i].tolist()
        s, e = tuple(mz.start[i]), tuple(mz.end[i])
        check_structure(grid)
        assert count_shortest_paths(grid, s, e) == 1
        assert check_path(grid, path, s, e) - 1 == bfs_dist(grid, s, e)
        with_cycles += (np.sum(mz.grid[i]) - m * m) > m * m - 1
        g2 = plain.grid[i].tolist()
        ties_before += count_shortest_paths(g2, tuple(plain.start[i]), tuple(plain.end[i])) > 1
    assert with_cycles >= 0.9 * n, "the redraws must keep the cycles, not fall back to the tree"
    assert ties_before > 0, "without unique_path some targets are one of several shortest paths"


def test_unique_path_on_an_open_grid_falls_back_to_the_tree():
    mz = generate_grids(5, 9, seed=0, cycles=1.0, unique_path=True)
    for i in range(5):
        grid = mz.grid[i].tolist()
        s, e = tuple(mz.start[i]), tuple(mz.end[i])
        assert count_shortest_paths(grid, s, e) == 1


def _canvas_grid(x, y, i):
    """The canvas at grid resolution (every grid pixel is a 2x2 block at odd offsets), start, end, path."""
    img, sol = x[i], y[i]
    grid = (img.max(0)[1::2, 1::2] > 0).astype(int)
    green = (img[1] > 0) & (img[0] == 0)
    red = (img[0] > 0) & (img[1] == 0)
    s = tuple(int(v) // 2 for v in np.argwhere(green)[0])
    e = tuple(int(v) // 2 for v in np.argwhere(red)[0])
    return grid, sol[1::2, 1::2].astype(int), s, e


@pytest.mark.parametrize("family", list(FAMILIES))
def test_mixture_of_one_family_is_valid_on_its_padded_canvas(family):
    x, y = generate_mixture(24, [5, 9], seed=1, families=[family], side=40)
    assert x.shape == (24, 3, 40, 40) and y.shape == (24, 40, 40)
    sides = set()
    for i in range(len(x)):
        grid, path, s, e = _canvas_grid(x, y, i)
        rows, cols = np.nonzero(grid)
        r0, r1, c0, c1 = rows.min() - 1, rows.max() + 1, cols.min() - 1, cols.max() + 1
        assert r1 - r0 == c1 - c0, "the maze sits square on the canvas"
        sub = grid[r0:r1 + 1, c0:c1 + 1].tolist()
        sides.add(len(sub))
        s2, e2 = (s[0] - r0, s[1] - c0), (e[0] - r0, e[1] - c0)
        assert path.sum() == path[r0:r1 + 1, c0:c1 + 1].sum(), "no target outside the maze"
        p = path[r0:r1 + 1, c0:c1 + 1].tolist()
        length = check_path(sub, p, s2, e2)
        assert length - 1 == bfs_dist(sub, s2, e2)
        if family == "cycles":
            check_structure(sub)
            assert count_shortest_paths(sub, s2, e2) == 1
        else:
            check_spanning_tree(sub)
            assert (degree(sub, s2) == 1) == (family == "dfs")
    assert sides == {7, 11}, "both sizes drawn (grid sides 2m+1 = 7 and 11)"


def test_mixture_is_deterministic_and_draws_every_family():
    a = generate_mixture(64, [9], seed=5)
    b = generate_mixture(64, [9], seed=5)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    c = generate_mixture(64, [9], seed=6)
    assert not np.array_equal(a[0], c[0])
    # start dead ends: the dfs family only (about a quarter of the mixture)
    dead = []
    for i in range(64):
        grid, path, s, e = _canvas_grid(*a, i)
        dead.append(degree(grid.tolist(), s) == 1)
    assert 5 <= sum(dead) <= 40


def test_mixture_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown maze family"):
        generate_mixture(4, [9], families=["prim"])
    with pytest.raises(ValueError, match="smaller than the largest"):
        generate_mixture(4, [9, 13], side=24)
    with pytest.raises(ValueError, match="at least one size"):
        generate_mixture(4, [])
    assert family_options("cycles")["unique_path"] is True


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(dict(data=None, n_train=8, n_val=4, train_size=9, val_size=None, seed=0,
                                  data_kwargs={}) | kw)


def test_task_mixture_options_and_errors():
    def datasets(**data_kwargs):       # the trainer builds the task from the config's data_kwargs
        return MazeTask(**data_kwargs).datasets(_Cfg(data_kwargs=data_kwargs))
    (x, y), (xv, yv) = datasets(families=["wilson"], sizes=[5, 9])
    assert x.shape[-1] == image_side(9) and xv.shape[-1] == image_side(9)
    (x, _), _ = datasets(algorithm="wilson")
    assert np.array_equal(x.numpy(), generate_mazes(8, 9, seed=0, algorithm="wilson")[0])
    with pytest.raises(ValueError, match="unknown key"):
        datasets(familes=["dfs"])
    with pytest.raises(ValueError, match="not both"):
        datasets(families=["dfs"], cycles=0.1)
    with pytest.raises(ValueError, match="must be lists"):
        datasets(families="dfs")
    with pytest.raises(ValueError, match="unknown maze family"):
        MazeTask(family="kruskal")


def test_eval_data_uses_the_family():
    x, _ = MazeTask(family="dfs_any").eval_data(9, 6, seed=2)
    assert np.array_equal(x.numpy(), generate_mazes(6, 9, seed=2, start_dead_end=False)[0])


def test_default_step_cap_grows_with_the_level():
    from convrnn.evaluate import default_step_cap
    from convrnn.tasks.pathfinder_task import PathfinderTask
    task = MazeTask()
    assert default_step_cap(task, 9, 30) == 120                  # 4x training wins on small mazes
    assert default_step_cap(task, 33, 30) == 2 * 17 * 17         # 2 m^2 cells
    assert default_step_cap(task, 59, 30) == 2 * 30 * 30
    assert default_step_cap(PathfinderTask(), 24, 20) == 96
    assert default_step_cap(PathfinderTask(), 14, 20) == 80

    class Plain(Task):         # a task without a rule of its own
        pass
    assert default_step_cap(Plain(), 3, 7) == 28


def test_eval_reports_the_cap_and_a_shorter_fixed_curve():
    import torch

    import convrnn
    from convrnn.evaluate import evaluate_level
    torch.manual_seed(0)
    model = convrnn.create_model("dtnet_recall_mazes", width=8, steps=4).eval()
    task = MazeTask()
    x, y = task.eval_data(9, 5, seed=0)
    fixed = evaluate_level(model, task, x, y, 6, "fixed", curve=True, curve_steps=3)
    assert fixed["hit_cap"] == 5 and fixed["max_steps"] == 6        # fixed runs always reach the cap
    assert len(fixed["curve"]) == 3 and 1 <= fixed["best_fixed_steps"] <= 3
    full = evaluate_level(model, task, x, y, 6, "fixed", curve=True)
    assert full["curve"][:3] == fixed["curve"] and len(full["curve"]) == 6
    stable = evaluate_level(model, task, x, y, 7, "stable", curve=False)
    hist = stable["steps_hist"]
    assert stable["hit_cap"] == hist[-1] and sum(hist) == 5          # literally: samples that used all 7 steps


def test_training_can_start_from_other_weights(tmp_path):
    import torch
    from test_train import OVERFIT, _train

    import convrnn
    from convrnn.checkpoint import CheckpointError, init_from, load_model, save_model
    from convrnn.config import TrainConfig
    torch.manual_seed(123)
    source = convrnn.create_model("dtnet_recall_mazes", width=8, steps=10)
    save_model(tmp_path / "src.safetensors", source)
    cfg = TrainConfig.from_dict({**OVERFIT, "epochs": 1, "lr": 1e-9, "warmup_epochs": 0.0, "out_dir": str(tmp_path / "run"),
                                 "init": str(tmp_path / "src.safetensors"),
                                 "data_kwargs": {"families": ["wilson", "cycles"], "sizes": [5]}})
    _train(cfg)
    tuned = load_model(tmp_path / "run")
    for (name, a), b in zip(source.state_dict().items(), tuned.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name                 # lr ~ 0: the run started from the source
    wide = convrnn.create_model("dtnet_recall_mazes", width=16, steps=10)
    with pytest.raises(CheckpointError, match="do not fit"):
        init_from(wide, tmp_path / "src.safetensors")
    with pytest.raises(ValueError, match="neither a bundled model"):
        init_from(wide, tmp_path / "nothing-here")
    init_from(convrnn.create_model("dtnet_recall_mazes", width=64, steps=30), "dtnet_mazes_w64")   # a bundled name


def test_eval_correlates_steps_with_each_mazes_solution_length():
    import torch

    import convrnn
    from convrnn.evaluate import evaluate, spearman
    torch.manual_seed(0)
    model = convrnn.create_model("dtnet_recall_mazes", width=8, steps=4).eval()
    task = MazeTask(family="wilson")
    res = evaluate(model, task, [5, 9], 6, 12, "stable", seed=3, curve=False, progress=False)
    lengths = []
    for size in (5, 9):
        mz = generate_grids(6, size, seed=3, **family_options("wilson"))
        lengths += [int(p.sum()) for p in mz.path]                 # path pixels at grid level
    assert res["levels"]["5"]["difficulty_per_sample"] + res["levels"]["9"]["difficulty_per_sample"] == lengths
    steps = res["levels"]["5"]["steps_per_sample"] + res["levels"]["9"]["steps_per_sample"]
    expect = spearman(lengths, steps)
    got = res["spearman_steps_vs_sample_difficulty"]
    assert (np.isnan(expect) and np.isnan(got)) or got == pytest.approx(expect)
    assert res["sample_difficulty"] == "solution length"


def test_compare_policies_matches_separate_runs():
    """One shadow pass gives each policy the same steps and accuracy as running it alone (with a shrinking
    batch), and the same fixed-step curve as a fixed pass."""
    import torch

    import convrnn
    from convrnn.evaluate import compare_policies, evaluate_level
    from convrnn.halting import Convergence, StableOutput
    torch.manual_seed(0)
    model = convrnn.create_model("dtnet_pathfinder", width=8, steps=4).eval()    # any dense model
    task = MazeTask()
    x, y = task.eval_data(9, 7, seed=1)
    x = x[:, :1]                       # one input channel for this model
    policies = {"stable": StableOutput(3), "conv": Convergence(tol=0.05)}
    both = compare_policies(model, _OneClass(task), x, y, 40, policies, batch_size=7)   # one batch
    for name, policy in (("stable", StableOutput(3)), ("conv", Convergence(tol=0.05))):
        alone = evaluate_level(model, _OneClass(task), x, y, 40, policy, batch_size=4, curve=False)
        got = both["policies"][name]
        assert got["steps_per_sample"] == alone["steps_per_sample"]
        assert got["accuracy"] == pytest.approx(alone["accuracy"]) and got["hit_cap"] == alone["hit_cap"]
        k = got["fixed_steps_to_match"]
        assert k is None or both["curve"][k - 1] >= got["accuracy"] - 1e-9
    fixed = evaluate_level(model, _OneClass(task), x, y, 40, "fixed", batch_size=4, curve=True)
    reach = len(both["curve"])
    last = max(max(p["steps_per_sample"]) for p in both["policies"].values())
    assert reach >= min(40, int(1.25 * last))             # the pass ran past the last policy's halt
    assert both["curve"] == pytest.approx(fixed["curve"][:reach])


class _OneClass(Task):
    """A maze task whose 3-class logits are read as 'class 2 = path' (so a 3-output model scores mazes)."""

    def __init__(self, task):
        self.task = task

    def correct(self, logits, target, x):
        return ((logits.argmax(1) == 2).long() == target).flatten(1).all(1)
