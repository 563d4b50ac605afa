"""Tests for convrnn.tasks.mazes: generator invariants, layout, determinism, I/O, metrics."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from convrnn.tasks.mazes import (
    MazeDataError,
    MazeGrids,
    cells_per_side,
    generate_grids,
    generate_mazes,
    image_side,
    load_mazes,
    maze_accuracy,
    render_mazes,
    save_mazes,
    write_mazes,
    wall_mask,
)

NB4 = ((-1, 0), (1, 0), (0, -1), (0, 1))


# ---------------------------------------------------------------------------------------------
# independent slow helpers (pure python)
# ---------------------------------------------------------------------------------------------


def cell_coords(G):
    return [(r, c) for r in range(1, G - 1, 2) for c in range(1, G - 1, 2)]


def open_neighbours(grid, r, c):
    return [(r + dr, c + dc) for dr, dc in NB4 if grid[r + dr][c + dc]]


def degree(grid, rc):
    return len(open_neighbours(grid, *rc))


def bfs_dist(grid, s, e):
    """Shortest distance (in grid pixels) between s and e through open pixels, or None."""
    G = len(grid)
    dist = {s: 0}
    q = deque([s])
    while q:
        u = q.popleft()
        if u == e:
            return dist[u]
        for v in open_neighbours(grid, *u):
            if 0 <= v[0] < G and 0 <= v[1] < G and v not in dist:
                dist[v] = dist[u] + 1
                q.append(v)
    return None


def n_passages(grid):
    G = len(grid)
    n_open = sum(int(grid[r][c]) for r in range(G) for c in range(G))
    return n_open - len(cell_coords(G))


def check_structure(grid):
    """Walls where walls must be, every cell open, all cells connected."""
    G = len(grid)
    for i in range(G):
        assert grid[0][i] == grid[G - 1][i] == grid[i][0] == grid[i][G - 1] == 0
    for r in range(0, G, 2):
        for c in range(0, G, 2):
            assert grid[r][c] == 0, "(even, even) grid pixels are always wall"
    cells = cell_coords(G)
    assert all(grid[r][c] == 1 for r, c in cells)
    seen = {cells[0]}
    q = deque([cells[0]])
    while q:
        u = q.popleft()
        for v in open_neighbours(grid, *u):
            if v not in seen:
                seen.add(v)
                q.append(v)
    assert all(c in seen for c in cells), "maze is not connected"


def check_spanning_tree(grid):
    check_structure(grid)
    m = (len(grid) - 1) // 2
    assert n_passages(grid) == m * m - 1, "connected + (cells - 1) passages <=> spanning tree"


def check_path(grid, path, s, e):
    """path is a simple chain of open pixels from s to e; returns its length in pixels."""
    G = len(grid)
    pix = {(r, c) for r in range(G) for c in range(G) if path[r][c]}
    assert s != e
    assert s in pix and e in pix
    for r, c in pix:
        assert grid[r][c] == 1, "path crosses a wall"
        k = sum((r + dr, c + dc) in pix for dr, dc in NB4)
        assert k == (1 if (r, c) in (s, e) else 2), f"path is not a simple chain at {(r, c)}"
    # walk the chain from s: it must reach e using every path pixel (no separate loops)
    prev, cur, steps = None, s, 1
    while cur != e:
        nxt = [v for v in ((cur[0] + dr, cur[1] + dc) for dr, dc in NB4) if v in pix and v != prev]
        assert len(nxt) == 1
        prev, cur, steps = cur, nxt[0], steps + 1
    assert steps == len(pix)
    return len(pix)


def reference_render(grid, path, s, e):
    """Literal slow renderer of the easy-to-hard layout from a grid."""
    G = len(grid)
    H = 2 * G + 2
    inp = [[[0.0] * H for _ in range(H)] for _ in range(3)]
    sol = [[0] * H for _ in range(H)]
    for r in range(G):
        for c in range(G):
            for dy in (0, 1):
                for dx in (0, 1):
                    y, x = 1 + 2 * r + dy, 1 + 2 * c + dx
                    if grid[r][c]:
                        if (r, c) == s:
                            colour = (0.0, 1.0, 0.0)
                        elif (r, c) == e:
                            colour = (1.0, 0.0, 0.0)
                        else:
                            colour = (1.0, 1.0, 1.0)
                        for ch in range(3):
                            inp[ch][y][x] = colour[ch]
                    if path[r][c]:
                        sol[y][x] = 1
    return np.array(inp, dtype=np.float32), np.array(sol, dtype=np.int64)


def as_lists(mz: MazeGrids, i):
    return (
        mz.grid[i].tolist(),
        mz.path[i].tolist(),
        tuple(int(v) for v in mz.start[i]),
        tuple(int(v) for v in mz.end[i]),
    )


# ---------------------------------------------------------------------------------------------
# generator invariants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,n", [(5, 60), (9, 60), (13, 30), (33, 8)])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_dfs_default_spanning_tree_unique_path_dead_end_start(size, n, seed):
    mz = generate_grids(n, size, seed)
    G = size + 2
    assert mz.grid.shape == (n, G, G) and mz.path.shape == (n, G, G)
    for i in range(n):
        grid, path, s, e = as_lists(mz, i)
        check_spanning_tree(grid)
        length = check_path(grid, path, s, e)
        # in a tree the path is unique, so it is also the shortest one
        assert bfs_dist(grid, s, e) == length - 1
        assert degree(grid, s) == 1, "DFS started from the start cell: start must be a dead end"
        assert s[0] % 2 == 1 and s[1] % 2 == 1 and e[0] % 2 == 1 and e[1] % 2 == 1


def test_size_201_one_maze():
    mz = generate_grids(1, 201, seed=7)
    grid, path, s, e = as_lists(mz, 0)
    check_spanning_tree(grid)
    check_path(grid, path, s, e)
    assert degree(grid, s) == 1
    inputs, sols = render_mazes(mz)
    assert inputs.shape == (1, 3, 408, 408) and sols.shape == (1, 408, 408)


def test_start_not_dead_end_variant():
    starts_deg = []
    for size in (5, 9, 13):
        mz = generate_grids(40, size, seed=3, start_dead_end=False)
        for i in range(40):
            grid, path, s, e = as_lists(mz, i)
            check_spanning_tree(grid)
            check_path(grid, path, s, e)
            starts_deg.append(degree(grid, s))
    # documented: the start is drawn among cells with >= 2 open neighbours
    assert min(starts_deg) >= 2
    assert max(starts_deg) >= 3  # junctions happen too, not only corridor cells


@pytest.mark.parametrize("start_dead_end", [True, False])
def test_wilson_spanning_trees(start_dead_end):
    for size in (5, 9, 13, 33):
        n = 30 if size < 33 else 6
        mz = generate_grids(n, size, seed=11, algorithm="wilson", start_dead_end=start_dead_end)
        for i in range(n):
            grid, path, s, e = as_lists(mz, i)
            check_spanning_tree(grid)
            check_path(grid, path, s, e)
            if start_dead_end:
                assert degree(grid, s) == 1
            else:
                assert degree(grid, s) >= 2


def test_wilson_differs_from_dfs_statistically():
    # DFS mazes have long corridors (few dead ends, ~10% of cells); uniform spanning trees
    # have ~29% dead ends.  A mixed-up algorithm switch would fail this.
    def dead_end_fraction(algorithm):
        mz = generate_grids(20, 31, seed=5, algorithm=algorithm)
        g = mz.grid.astype(int)
        cells = g[:, 1:-1:2, 1:-1:2]
        deg = (
            g[:, 0:-2:2, 1:-1:2] + g[:, 2::2, 1:-1:2] + g[:, 1:-1:2, 0:-2:2] + g[:, 1:-1:2, 2::2]
        )
        assert cells.all()
        return float((deg == 1).mean())

    dfs, wil = dead_end_fraction("dfs"), dead_end_fraction("wilson")
    assert dfs < 0.16 < 0.24 < wil


def test_start_end_drawn_over_all_cells():
    mz = generate_grids(3000, 9, seed=2)
    starts = {tuple(p) for p in mz.start.tolist()}
    ends = {tuple(p) for p in mz.end.tolist()}
    assert len(starts) == 25 and len(ends) == 25
    assert (mz.start != mz.end).any(axis=1).all()
    # roughly uniform: each cell expected 120 times as start
    counts = np.unique(mz.start[:, 0] * 100 + mz.start[:, 1], return_counts=True)[1]
    assert counts.min() > 60 and counts.max() < 190


@pytest.mark.parametrize("algorithm", ["dfs", "wilson"])
def test_cycles_give_more_passages_and_shortest_path(algorithm):
    extra = 0
    for size in (5, 9, 13):
        n = 25
        mz = generate_grids(n, size, seed=4, algorithm=algorithm, cycles=0.3)
        m = (size + 1) // 2
        for i in range(n):
            grid, path, s, e = as_lists(mz, i)
            check_structure(grid)
            assert n_passages(grid) >= m * m - 1
            extra += n_passages(grid) - (m * m - 1)
            length = check_path(grid, path, s, e)
            assert length - 1 == bfs_dist(grid, s, e), "target must be a shortest path"
    assert extra > 50


def test_cycles_one_opens_every_interior_wall():
    mz = generate_grids(3, 9, seed=0, cycles=1.0)
    G = 11
    for i in range(3):
        grid = mz.grid[i]
        assert n_passages(grid.tolist()) == 2 * 5 * 4
        # then the shortest path length is the Manhattan distance between the cells
        s, e = mz.start[i], mz.end[i]
        assert int(mz.path[i].sum()) == abs(s - e).sum() + 1
        assert grid[0].sum() == grid[G - 1].sum() == 0


# ---------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,side", [(5, 16), (9, 24), (13, 32), (33, 72), (59, 124)])
def test_image_side(size, side):
    assert image_side(size) == side
    assert cells_per_side(size) == (size + 1) // 2
    inputs, sols = generate_mazes(2, size, seed=0)
    assert inputs.shape == (2, 3, side, side) and inputs.dtype == np.float32
    assert sols.shape == (2, side, side) and sols.dtype == np.int64


@pytest.mark.parametrize(
    "size,kw",
    [
        (5, {}),
        (9, {}),
        (13, {"algorithm": "wilson"}),
        (9, {"start_dead_end": False}),
        (11, {"cycles": 0.2}),
        (33, {}),
    ],
)
def test_byte_level_agreement_with_reference_renderer(size, kw):
    n = 12 if size < 33 else 3
    mz = generate_grids(n, size, seed=21, **kw)
    inputs, sols = generate_mazes(n, size, seed=21, **kw)
    for i in range(n):
        ref_in, ref_sol = reference_render(*as_lists(mz, i))
        assert inputs[i].tobytes() == ref_in.tobytes()
        assert sols[i].tobytes() == ref_sol.tobytes()


def test_colours_and_border():
    inputs, sols = generate_mazes(50, 9, seed=8)
    mz = generate_grids(50, 9, seed=8)
    H = 24
    assert set(np.unique(inputs).tolist()) <= {0.0, 1.0}
    assert set(np.unique(sols).tolist()) == {0, 1}
    colours = {tuple(v) for v in inputs.transpose(0, 2, 3, 1).reshape(-1, 3).tolist()}
    assert colours == {(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)}
    # border: the 1-pixel frame and the grid's wall ring => 3-pixel wall frame
    for k in range(3):
        for a in (inputs[:, :, k, :], inputs[:, :, H - 1 - k, :], inputs[:, :, :, k], inputs[:, :, :, H - 1 - k]):
            assert not a.any()
    for i in range(50):
        green = (inputs[i, 0] == 0) & (inputs[i, 1] == 1) & (inputs[i, 2] == 0)
        red = (inputs[i, 0] == 1) & (inputs[i, 1] == 0) & (inputs[i, 2] == 0)
        assert green.sum() == 4 and red.sum() == 4
        (sr, sc), (er, ec) = mz.start[i], mz.end[i]
        assert green[2 * sr + 1 : 2 * sr + 3, 2 * sc + 1 : 2 * sc + 3].all()
        assert red[2 * er + 1 : 2 * er + 3, 2 * ec + 1 : 2 * ec + 3].all()
        # endpoints are on the path, path only on non-wall pixels, blocks of 2x2
        assert sols[i][green].all() and sols[i][red].all()
        assert not (sols[i].astype(bool) & ~inputs[i].any(0)).any()
        blocks = sols[i, 1:-1, 1:-1].reshape(11, 2, 11, 2)
        assert (blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))).all()


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{}, {"algorithm": "wilson"}, {"start_dead_end": False}, {"cycles": 0.25}]
)
def test_determinism_and_prefix(kw):
    a_in, a_sol = generate_mazes(100, 9, seed=99, **kw)
    b_in, b_sol = generate_mazes(100, 9, seed=99, **kw)
    c_in, c_sol = generate_mazes(10, 9, seed=99, **kw)
    assert a_in.tobytes() == b_in.tobytes() and a_sol.tobytes() == b_sol.tobytes()
    assert np.array_equal(a_in[:10], c_in) and np.array_equal(a_sol[:10], c_sol)
    d_in, _ = generate_mazes(100, 9, seed=100, **kw)
    assert not np.array_equal(a_in, d_in)
    # mazes within a batch are not copies of each other
    assert len({x.tobytes() for x in a_in}) == 100


def test_zero_mazes_and_argument_errors():
    inputs, sols = generate_mazes(0, 9)
    assert inputs.shape == (0, 3, 24, 24) and sols.shape == (0, 24, 24)
    for bad in (3, 4, 10, -1):
        with pytest.raises(ValueError):
            generate_mazes(1, bad)
    with pytest.raises(ValueError):
        generate_mazes(1, 9, algorithm="kruskal")
    with pytest.raises(ValueError):
        generate_mazes(1, 9, cycles=1.5)
    with pytest.raises(ValueError):
        generate_mazes(-1, 9)


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set():
    return generate_mazes(7, 9, seed=1)


def test_roundtrip_folder(tmp_path, small_set):
    inputs, sols = small_set
    out = save_mazes(tmp_path / "maze_data_train_9", inputs, sols)
    assert (out / "inputs.npy").is_file() and (out / "solutions.npy").is_file()
    li, ls = load_mazes(out)
    assert li.dtype == np.float32 and ls.dtype == np.int64
    assert np.array_equal(li, inputs) and np.array_equal(ls, sols)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip_npz(tmp_path, small_set, compress):
    inputs, sols = small_set
    save_mazes(tmp_path / "sub" / "m.npz", inputs, sols, compress=compress)
    li, ls = load_mazes(tmp_path / "sub" / "m.npz")
    assert np.array_equal(li, inputs) and np.array_equal(ls, sols)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.npz"]


def test_files_are_uint8_by_default_float32_on_request(tmp_path, small_set):
    inputs, sols = small_set
    small = save_mazes(tmp_path / "u8", inputs, sols)
    big = save_mazes(tmp_path / "f32", inputs, sols, dtype="float32")
    assert np.load(small / "inputs.npy").dtype == np.uint8 and np.load(small / "solutions.npy").dtype == np.uint8
    assert np.load(big / "inputs.npy").dtype == np.float32 and np.load(big / "solutions.npy").dtype == np.int64
    size = lambda d: sum(p.stat().st_size for p in d.iterdir())     # noqa: E731
    assert size(small) * 4 < size(big)
    for d in (small, big):                                            # reading gives float either way
        li, ls = load_mazes(d)
        assert li.dtype == np.float32 and ls.dtype == np.int64
        assert np.array_equal(li, inputs) and np.array_equal(ls, sols)
    with pytest.raises(ValueError, match="dtype must be 'uint8' or 'float32'"):
        save_mazes(tmp_path / "x", inputs, sols, dtype="float16")


def test_compact_generation_equals_float_generation():
    xf, yf = generate_mazes(6, 13, seed=4, algorithm="wilson", cycles=0.1)
    xu, yu = generate_mazes(6, 13, seed=4, algorithm="wilson", cycles=0.1, compact=True)
    assert xu.dtype == np.uint8 and yu.dtype == np.uint8
    assert np.array_equal(xu, xf) and np.array_equal(yu, yf)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_write_mazes_streams_the_same_files(tmp_path, dtype, chunk):
    """Streamed chunk by chunk, the folder holds byte for byte what save_mazes writes."""
    x, y = generate_mazes(7, 9, seed=5, start_dead_end=False)
    ref = save_mazes(tmp_path / "ref", x, y, dtype=dtype)
    out = write_mazes(tmp_path / "out", 7, 9, seed=5, start_dead_end=False, dtype=dtype, chunk=chunk)
    for name in ("inputs.npy", "solutions.npy"):
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["inputs.npy", "solutions.npy"]     # no temporaries left
    npz = write_mazes(tmp_path / "m.npz", 7, 9, seed=5, start_dead_end=False, dtype=dtype)
    assert all(np.array_equal(a, b) for a, b in zip(load_mazes(npz), load_mazes(ref)))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        write_mazes(tmp_path / "bad", 2, 9, chunk=0)


def test_save_overwrites_atomically(tmp_path, small_set):
    inputs, sols = small_set
    p = tmp_path / "m.npz"
    save_mazes(p, inputs, sols)
    save_mazes(p, inputs[:2], sols[:2])
    li, _ = load_mazes(p)
    assert li.shape[0] == 2


def maze_dataset_style(inputs, sols, channels_last=True):
    """Mimic maze-dataset's rasterized arrays: uint8 0/255 RGB problem and solution images."""
    img = (inputs * 255).astype(np.uint8)
    # solution image: path pixels white, endpoints keep their colours, everything else black
    sol = np.where(sols[:, None].astype(bool), img, 0).astype(np.uint8)
    if channels_last:
        return img.transpose(0, 2, 3, 1).copy(), sol.transpose(0, 2, 3, 1).copy()
    return img, sol


@pytest.mark.parametrize("channels_last", [True, False])
def test_load_maze_dataset_arrays(tmp_path, small_set, channels_last):
    inputs, sols = small_set
    img, sol_img = maze_dataset_style(inputs, sols, channels_last)
    # folder with 0/255 images
    d = tmp_path / "md"
    d.mkdir()
    np.save(d / "inputs.npy", img)
    np.save(d / "solutions.npy", sol_img)
    li, ls = load_mazes(d)
    assert np.array_equal(li, inputs) and np.array_equal(ls, sols)
    # npz with 0/255 images and a 0/255 single-channel target
    np.savez(tmp_path / "md.npz", inputs=img, solutions=(sols * 255).astype(np.uint8))
    li, ls = load_mazes(tmp_path / "md.npz")
    assert np.array_equal(li, inputs) and np.array_equal(ls, sols)
    # one .npy of (problem, solution) pairs, as maze-dataset's numpy collections
    np.save(tmp_path / "pairs.npy", np.stack([img, sol_img], axis=1))
    li, ls = load_mazes(tmp_path / "pairs.npy")
    assert li.dtype == np.float32 and ls.dtype == np.int64
    assert np.array_equal(li, inputs) and np.array_equal(ls, sols)


def _corrupt_cases(tmp_path, inputs, sols):
    cases = {}
    # truncated inputs.npy
    d = tmp_path / "trunc"
    save_mazes(d, inputs, sols)
    raw = (d / "inputs.npy").read_bytes()
    (d / "inputs.npy").write_bytes(raw[: len(raw) // 2])
    cases["truncated npy"] = d
    # header only
    d = tmp_path / "header"
    save_mazes(d, inputs, sols)
    (d / "solutions.npy").write_bytes((d / "solutions.npy").read_bytes()[:40])
    cases["truncated header"] = d
    # missing solutions.npy
    d = tmp_path / "missing"
    save_mazes(d, inputs, sols)
    (d / "solutions.npy").unlink()
    cases["missing file"] = d
    # empty folder
    d = tmp_path / "empty"
    d.mkdir()
    cases["empty folder"] = d
    # truncated npz
    p = tmp_path / "t.npz"
    save_mazes(p, inputs, sols)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    cases["truncated npz"] = p
    # npz with a corrupted member (compressed, bytes flipped in the middle)
    p = tmp_path / "flip.npz"
    save_mazes(p, inputs, sols, compress=True)
    raw = bytearray(p.read_bytes())
    mid = len(raw) // 3
    raw[mid : mid + 64] = bytes(64)
    p.write_bytes(bytes(raw))
    cases["corrupted npz member"] = p
    # garbage
    p = tmp_path / "garbage.npz"
    p.write_bytes(b"this is not a zip file at all")
    cases["garbage npz"] = p
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    cases["empty npz"] = p
    # wrong keys
    p = tmp_path / "keys.npz"
    np.savez(p, x=inputs, y=sols)
    cases["wrong keys"] = p
    # object (pickled) array
    d = tmp_path / "pickled"
    d.mkdir()
    np.save(d / "inputs.npy", np.array([inputs, None], dtype=object), allow_pickle=True)
    np.save(d / "solutions.npy", sols)
    cases["pickled"] = d
    # wrong shapes / values
    for name, (a, b) in {
        "3-D inputs": (inputs[:, 0], sols),
        "n mismatch": (inputs, sols[:-1]),
        "H mismatch": (inputs, sols[:, :-2, :-2]),
        "non-square": (inputs[:, :, :, :-2], sols[:, :, :-2]),
        "2 channels": (inputs[:, :2], sols),
        "bad input values": (inputs * 0.5, sols),
        "bad target values": (inputs, sols * 2),
        "path on wall": (inputs, np.ones_like(sols)),
    }.items():
        d = tmp_path / name.replace(" ", "_")
        d.mkdir()
        np.save(d / "inputs.npy", a)
        np.save(d / "solutions.npy", b)
        cases[name] = d
    cases["nonexistent"] = tmp_path / "nope"
    p = tmp_path / "weird.txt"
    p.write_text("hello")
    cases["unknown suffix"] = p
    p = tmp_path / "pairs_bad.npy"
    np.save(p, inputs)
    cases["npy not pairs"] = p
    return cases


def test_corrupt_files_raise_maze_data_error(tmp_path, small_set):
    inputs, sols = small_set
    for name, path in _corrupt_cases(tmp_path, inputs, sols).items():
        with pytest.raises(MazeDataError) as info:
            load_mazes(path)
        msg = str(info.value)
        assert str(path.name) in msg, f"{name}: message does not name the file: {msg}"
        assert isinstance(info.value, ValueError)


def test_save_rejects_bad_arrays_and_suffix(tmp_path, small_set):
    inputs, sols = small_set
    with pytest.raises(MazeDataError):
        save_mazes(tmp_path / "x.npz", inputs, sols[:, :-1])
    with pytest.raises(ValueError):
        save_mazes(tmp_path / "x.h5", inputs, sols)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def test_maze_accuracy_and_wall_mask(small_set):
    inputs, sols = small_set
    pred = sols.copy()
    pred[2, 10, 10] ^= 1
    pred[5, 0, 0] = 1
    acc = maze_accuracy(pred, sols)
    assert acc.dtype == bool and acc.tolist() == [True, True, False, True, True, False, True]
    mask = wall_mask(inputs)
    assert mask.dtype == bool and mask.shape == sols.shape
    mz = generate_grids(7, 9, seed=1)
    expect = np.kron(mz.grid.astype(bool), np.ones((2, 2), bool))
    expect = np.pad(expect, ((0, 0), (1, 1), (1, 1)))
    assert np.array_equal(mask, expect)
    with pytest.raises(ValueError):
        maze_accuracy(pred[:, :-1], sols)


def test_metrics_accept_torch():
    torch = pytest.importorskip("torch")
    inputs, sols = generate_mazes(4, 5, seed=0)
    t_in, t_sol = torch.from_numpy(inputs), torch.from_numpy(sols)
    pred = t_sol.clone()
    pred[1, 5, 5] = 1 - pred[1, 5, 5]
    assert maze_accuracy(pred, t_sol).tolist() == [True, False, True, True]
    assert torch.equal(wall_mask(t_in), torch.from_numpy(wall_mask(inputs)))


# ---------------------------------------------------------------------------------------------
# property test
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([5, 7, 9, 11, 15]),
    seed=st.integers(min_value=0, max_value=2**64 - 1),
    algorithm=st.sampled_from(["dfs", "wilson"]),
    start_dead_end=st.booleans(),
    cycles=st.sampled_from([0.0, 0.0, 0.1, 0.5]),
)
def test_property_invariants(size, seed, algorithm, start_dead_end, cycles):
    mz = generate_grids(3, size, seed, algorithm=algorithm, start_dead_end=start_dead_end, cycles=cycles)
    inputs, sols = render_mazes(mz)
    m = (size + 1) // 2
    for i in range(3):
        grid, path, s, e = as_lists(mz, i)
        if cycles == 0.0:
            check_spanning_tree(grid)
            if start_dead_end:
                assert degree(grid, s) == 1
            else:
                assert degree(grid, s) >= 2
        else:
            check_structure(grid)
            assert n_passages(grid) >= m * m - 1
        length = check_path(grid, path, s, e)
        assert length - 1 == bfs_dist(grid, s, e)
        ref_in, ref_sol = reference_render(grid, path, s, e)
        assert np.array_equal(inputs[i], ref_in) and np.array_equal(sols[i], ref_sol)
