# Over 600 lines on purpose: the numba generator kernels, families, file I/O and metrics share one maze layout.
"""Maze data in the DeepThinking "easy-to-hard" layout: generator, on-disk I/O, metrics.

Layout (Schwarzschild et al., 2021, "Can You Learn an Algorithm? Generalizing from Easy to
Hard Problems with Recurrent Networks" / "The Uncanny Similarity of Recurrence and Depth";
data package ``easy-to-hard-data``):

* A perfect maze on ``m x m`` cells.  The *maze size* is ``N = 2m - 1`` (a "9x9" maze has
  ``m = 5`` cells per side); ``N`` is odd and ``N >= 5`` here.
* The maze *grid* is ``(2m+1) x (2m+1)`` = ``(N+2) x (N+2)`` pixels, open = 1, wall = 0.
  Cell ``(r, c)`` sits at grid pixel ``(2r+1, 2c+1)``; the passage between two adjacent cells is
  the grid pixel between them; the grid's outer ring and every (even, even) pixel are wall.
* Every grid pixel becomes a 2x2 block and a 1-pixel wall border is added, so the image side is
  ``2 * (N + 2) + 2 = 2N + 6`` (9 -> 24, 13 -> 32, 33 -> 72, 59 -> 124, 201 -> 408).
  Grid pixel ``(r, c)`` covers image rows ``2r+1, 2r+2`` and columns ``2c+1, 2c+2``.
* Input: float32 ``(n, 3, H, W)`` in {0, 1}: wall (0,0,0), open (1,1,1), the start cell's 2x2
  block green (0,1,0), the end cell's 2x2 block red (1,0,0).
* Target: ``(n, H, W)``, 1 on the path's pixels (the 2x2 blocks of the path's grid pixels,
  both endpoints included), 0 elsewhere.  Kept as int64 in memory (the easy-to-hard loaders
  call ``.long()`` on it).
* Stored as uint8 0/1 by default (inputs 4x and targets 8x smaller than float32/int64, so writing
  no longer dominates ``convrnn data mazes``); ``save_mazes(..., dtype="float32")`` writes float32
  inputs and int64 targets as easy-to-hard's files hold them.  Loading accepts any 0/1 (or 0/255)
  integer, bool or float dtype and always returns float32 inputs and int64 targets.
* On disk: a folder with ``inputs.npy`` + ``solutions.npy`` (easy-to-hard), or one ``.npz``
  with keys ``inputs`` and ``solutions``.  ``load_mazes`` also reads maze-dataset's rasterized
  arrays (``RasterizedMazeDataset``: uint8 0/255, channels last, side ``4g + 4`` for ``g`` cells,
  the same layout).

Generation (default = the easy-to-hard recipe): randomized depth-first search ("recursive
backtracker", iterative stack) started from the start cell, so the start is always a dead end;
start and end are two distinct cells drawn uniformly; the target is the unique path.  Variants:

* ``start_dead_end=False``: the DFS starts from a uniformly drawn cell and the start is drawn
  uniformly among the cells with at least two open neighbours (so it is never a dead end).
* ``algorithm="wilson"``: Wilson's algorithm (loop-erased random walks), a uniform spanning tree.
  With ``start_dead_end=True`` the start is drawn uniformly among the tree's dead ends.
* ``cycles=p``: percolation.  After carving the tree (and choosing start and end on the tree),
  each remaining wall between two adjacent cells is removed independently with probability
  ``p``.  The target is *a* shortest path found by breadth-first search (neighbour order up,
  down, left, right); when several shortest paths exist, it is the one BFS finds first, which a
  model cannot know, so exact-match accuracy is then an underestimate.  The start may gain
  openings from percolation, i.e. the dead-end property refers to the tree before it.
* ``unique_path=True`` (with ``cycles``): percolation is redrawn (up to 32 times) until the
  shortest path from start to end is unique, so the target is *the* answer and exact-match
  accuracy is honest; a maze whose draws all tie keeps its tree (no cycles).  With
  ``cycles=1.0`` (an open grid) that is almost every maze.

Families (:data:`FAMILIES`) name the combinations a solver should hold across: ``dfs`` (the
easy-to-hard recipe), ``dfs_any`` (start anywhere), ``wilson`` (uniform spanning tree, start
anywhere) and ``cycles`` (start anywhere, 10% of the remaining walls opened, unique shortest
path).  :func:`generate_mixture` draws a training set over families and sizes, smaller mazes
padded with wall to a common canvas.

The trainer/evaluator glue (:class:`~convrnn.tasks.maze_task.MazeTask`) lives in
:mod:`convrnn.tasks.maze_task`.  (Over 600 lines: the numba kernels, the families built from them and
the on-disk formats share one layout, documented once above.)

Randomness: maze ``i`` of a batch depends only on ``(seed, i)`` (a splitmix64 stream per maze),
so ``generate_mazes(10, s)`` is the first 10 mazes of ``generate_mazes(100, s)`` and the output
is identical across runs and machines.  Bounded integers use the 32-bit multiply-shift map,
whose bias (< n / 2**32) is negligible for any maze size here.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from ..fileio import atomic_write as _atomic_write
from ..fileio import check_npy_file, check_npz_file
from .rng import GOLDEN as _GOLDEN
from .rng import mix as _mix
from .rng import randbelow as _randbelow
from .rng import uniform as _uniform

__all__ = [
    "MazeDataError",
    "MazeGrids",
    "cells_per_side",
    "image_side",
    "generate_grids",
    "render_mazes",
    "generate_mazes",
    "FAMILIES",
    "family_options",
    "generate_mixture",
    "save_mazes",
    "write_mazes",
    "load_mazes",
    "maze_accuracy",
    "wall_mask",
]

ALGORITHMS = ("dfs", "wilson")


class MazeDataError(ValueError):
    """A maze file or array that is missing, malformed, truncated or of the wrong shape/values."""


class MazeGrids(NamedTuple):
    """Grid-level mazes (before rendering to the image layout).

    grid:  uint8 (n, G, G), G = N + 2 = 2m + 1; 1 = open, 0 = wall.
    start: int64 (n, 2), (row, col) grid coordinates of the start cell (both odd).
    end:   int64 (n, 2), (row, col) grid coordinates of the end cell.
    path:  uint8 (n, G, G), 1 on the grid pixels of the target path (endpoints included).
    """

    grid: np.ndarray
    start: np.ndarray
    end: np.ndarray
    path: np.ndarray


def cells_per_side(size: int) -> int:
    """Number of cells per side ``m`` of a maze of size ``N = 2m - 1``."""
    _check_size(size)
    return (int(size) + 1) // 2


def image_side(size: int) -> int:
    """Image side ``2N + 6`` of a maze of size ``N``."""
    _check_size(size)
    return 2 * int(size) + 6


def _check_size(size) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"maze size must be an int, got {type(size).__name__}")
    if size < 5 or size % 2 == 0:
        raise ValueError(f"maze size N must be odd and >= 5 (N = 2m - 1 for m cells), got {size}")


# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _cell_px(k, m, G):
    return (2 * (k // m) + 1) * G + 2 * (k % m) + 1


@njit(cache=True)
def _carve_dfs(g, m, G, root, st, stack, visited, nb):
    M = m * m
    for k in range(M):
        visited[k] = 0
    visited[root] = 1
    g[_cell_px(root, m, G)] = 1
    stack[0] = root
    top = 0
    while top >= 0:
        k = stack[top]
        r = k // m
        c = k - r * m
        cnt = 0
        if r > 0 and visited[k - m] == 0:
            nb[cnt] = k - m
            cnt += 1
        if r < m - 1 and visited[k + m] == 0:
            nb[cnt] = k + m
            cnt += 1
        if c > 0 and visited[k - 1] == 0:
            nb[cnt] = k - 1
            cnt += 1
        if c < m - 1 and visited[k + 1] == 0:
            nb[cnt] = k + 1
            cnt += 1
        if cnt == 0:
            top -= 1
            continue
        j = nb[0] if cnt == 1 else nb[_randbelow(st, cnt)]
        pk = _cell_px(k, m, G)
        pj = _cell_px(j, m, G)
        g[(pk + pj) // 2] = 1
        g[pj] = 1
        visited[j] = 1
        top += 1
        stack[top] = j


@njit(cache=True)
def _carve_wilson(g, m, G, st, nxt, intree, nb):
    M = m * m
    for k in range(M):
        intree[k] = 0
    root = _randbelow(st, M)
    intree[root] = 1
    g[_cell_px(root, m, G)] = 1
    for k0 in range(M):
        if intree[k0] == 1:
            continue
        # random walk until the tree is hit; overwriting nxt[] erases the loops
        u = k0
        while intree[u] == 0:
            r = u // m
            c = u - r * m
            cnt = 0
            if r > 0:
                nb[cnt] = u - m
                cnt += 1
            if r < m - 1:
                nb[cnt] = u + m
                cnt += 1
            if c > 0:
                nb[cnt] = u - 1
                cnt += 1
            if c < m - 1:
                nb[cnt] = u + 1
                cnt += 1
            v = nb[_randbelow(st, cnt)]
            nxt[u] = v
            u = v
        # add the loop-erased path to the tree
        u = k0
        while intree[u] == 0:
            intree[u] = 1
            v = nxt[u]
            pu = _cell_px(u, m, G)
            pv = _cell_px(v, m, G)
            g[pu] = 1
            g[(pu + pv) // 2] = 1
            u = v


@njit(cache=True)
def _degree(g, p, G):
    return np.int64(g[p - G]) + np.int64(g[p + G]) + np.int64(g[p - 1]) + np.int64(g[p + 1])


@njit(cache=True)
def _pick_cell(g, m, G, st, want_dead_end, cand):
    """Uniform cell whose degree is 1 (want_dead_end) or >= 2 (otherwise)."""
    M = m * m
    cnt = 0
    for k in range(M):
        d = _degree(g, _cell_px(k, m, G), G)
        if (want_dead_end and d == 1) or ((not want_dead_end) and d >= 2):
            cand[cnt] = k
            cnt += 1
    return cand[_randbelow(st, cnt)]


@njit(cache=True)
def _percolate(g, G, p, st):
    for r in range(1, G - 1):
        # walls between horizontally adjacent cells: odd row, even col; between vertically
        # adjacent cells: even row, odd col.  (even, even) pixels stay wall.
        c0 = 2 if r % 2 == 1 else 1
        for c in range(c0, G - 1, 2):
            q = r * G + c
            if g[q] == 0 and _uniform(st) < p:
                g[q] = 1


@njit(cache=True)
def _bfs(g, G, s, e, parent, dist, count, queue, count_paths):
    """Breadth-first search from ``s`` (neighbour order up, down, left, right); ``parent[v]`` is the pixel
    that first reached ``v``.  With ``count_paths`` it searches the whole maze and returns the number of
    shortest paths from ``s`` to ``e``, saturated at 2; otherwise it stops once ``e`` is reached (returns 0)."""
    for q in range(G * G):
        parent[q] = -1
        dist[q] = -1
        count[q] = 0
    parent[s] = s
    dist[s] = 0
    count[s] = 1
    queue[0] = s
    head = 0
    tail = 1
    while head < tail:
        u = queue[head]
        head += 1
        if u == e and not count_paths:
            break
        # open pixels never touch the grid's outer ring, so u +- 1, u +- G stay in range
        for v in (u - G, u + G, u - 1, u + 1):
            if g[v] == 1:
                if dist[v] < 0:
                    dist[v] = dist[u] + 1
                    count[v] = count[u]
                    parent[v] = u
                    queue[tail] = v
                    tail += 1
                elif dist[v] == dist[u] + 1:
                    count[v] = min(2, count[v] + count[u])
    return count[e] if count_paths else 0


@njit(cache=True)
def _trace(path, parent, s, e):
    """Mark the path from ``e`` back to ``s`` along ``parent`` (nothing if ``e`` was not reached)."""
    if parent[e] < 0:  # unreachable (cannot happen for the connected mazes made here)
        return
    u = e
    while True:
        path[u] = 1
        if u == s:
            break
        u = parent[u]


@njit(cache=True)
def _generate_batch(n, m, seed, algo, start_dead_end, cycles, unique, grids, paths, starts, ends):
    G = 2 * m + 1
    M = m * m
    st = np.zeros(1, np.uint64)
    stack = np.empty(M, np.int64)
    mark = np.empty(M, np.uint8)
    cand = np.empty(M, np.int64)
    nb = np.empty(4, np.int64)
    queue = np.empty(G * G, np.int64)
    parent = np.empty(G * G, np.int64)
    dist = np.empty(G * G, np.int64)
    count = np.empty(G * G, np.int64)
    tree = np.empty(G * G, np.uint8)
    base = _mix(seed + _GOLDEN)
    for i in range(n):
        st[0] = _mix(base + np.uint64(i) * _GOLDEN)
        g = grids[i]
        if algo == 0:
            if start_dead_end:
                start = _randbelow(st, M)
                _carve_dfs(g, m, G, start, st, stack, mark, nb)
            else:
                root = _randbelow(st, M)
                _carve_dfs(g, m, G, root, st, stack, mark, nb)
                start = _pick_cell(g, m, G, st, False, cand)
        else:
            _carve_wilson(g, m, G, st, stack, mark, nb)
            start = _pick_cell(g, m, G, st, start_dead_end, cand)
        end = _randbelow(st, M - 1)
        if end >= start:
            end += 1
        s = _cell_px(start, m, G)
        e = _cell_px(end, m, G)
        if cycles > 0.0:
            tree[:] = g
            for attempt in range(32 if unique else 1):
                g[:] = tree
                _percolate(g, G, cycles, st)
                if _bfs(g, G, s, e, parent, dist, count, queue, unique) == 1 or not unique:
                    break
            else:
                g[:] = tree
                _bfs(g, G, s, e, parent, dist, count, queue, False)
        else:
            _bfs(g, G, s, e, parent, dist, count, queue, False)
        _trace(paths[i], parent, s, e)
        starts[i, 0] = s // G
        starts[i, 1] = s % G
        ends[i, 0] = e // G
        ends[i, 1] = e % G


@njit(cache=True)
def _render_batch(grids, paths, starts, ends, G, inputs, sols):
    n = grids.shape[0]
    for i in range(n):
        for r in range(1, G - 1):
            y = 2 * r + 1
            for c in range(1, G - 1):
                q = r * G + c
                if grids[i, q] != 0:
                    x = 2 * c + 1
                    for ch in range(3):
                        inputs[i, ch, y, x] = 1.0
                        inputs[i, ch, y, x + 1] = 1.0
                        inputs[i, ch, y + 1, x] = 1.0
                        inputs[i, ch, y + 1, x + 1] = 1.0
                    if paths[i, q] != 0:
                        sols[i, y, x] = 1
                        sols[i, y, x + 1] = 1
                        sols[i, y + 1, x] = 1
                        sols[i, y + 1, x + 1] = 1
        # start: green (0,1,0) -> clear channels 0 and 2; end: red (1,0,0) -> clear 1 and 2
        y = 2 * starts[i, 0] + 1
        x = 2 * starts[i, 1] + 1
        for ch in (0, 2):
            inputs[i, ch, y, x] = 0.0
            inputs[i, ch, y, x + 1] = 0.0
            inputs[i, ch, y + 1, x] = 0.0
            inputs[i, ch, y + 1, x + 1] = 0.0
        y = 2 * ends[i, 0] + 1
        x = 2 * ends[i, 1] + 1
        for ch in (1, 2):
            inputs[i, ch, y, x] = 0.0
            inputs[i, ch, y, x + 1] = 0.0
            inputs[i, ch, y + 1, x] = 0.0
            inputs[i, ch, y + 1, x + 1] = 0.0


# --------------------------------------------------------------------------------------------
# public generator API
# --------------------------------------------------------------------------------------------


def _check_args(n, seed, algorithm, cycles):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    cycles = float(cycles)
    if not (0.0 <= cycles <= 1.0):
        raise ValueError(f"cycles must be a probability in [0, 1], got {cycles}")
    return np.uint64(int(seed) % (1 << 64)), cycles


def generate_grids(
    n: int,
    size: int,
    seed: int = 0,
    *,
    algorithm: str = "dfs",
    start_dead_end: bool = True,
    cycles: float = 0.0,
    unique_path: bool = False,
) -> MazeGrids:
    """Generate ``n`` mazes of size ``size`` (= N, odd, >= 5) at the grid level.

    See the module docstring for the algorithms and variants.  Maze ``i`` depends only on
    ``(seed, i)`` and the keyword options.
    """
    _check_size(size)
    seed_u, cycles = _check_args(n, seed, algorithm, cycles)
    m = (int(size) + 1) // 2
    G = 2 * m + 1
    n = int(n)
    grids = np.zeros((n, G * G), np.uint8)
    paths = np.zeros((n, G * G), np.uint8)
    starts = np.zeros((n, 2), np.int64)
    ends = np.zeros((n, 2), np.int64)
    if n:
        _generate_batch(
            n, m, seed_u, ALGORITHMS.index(algorithm), bool(start_dead_end), cycles, bool(unique_path),
            grids, paths, starts, ends,
        )
    return MazeGrids(grids.reshape(n, G, G), starts, ends, paths.reshape(n, G, G))


def render_mazes(mazes: MazeGrids, compact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render grid-level mazes to the easy-to-hard image layout.

    Returns ``(inputs float32 (n, 3, H, W), solutions int64 (n, H, W))`` with ``H = W = 2G + 2``
    (``compact=True``: both uint8, the on-disk form).
    """
    grid = np.ascontiguousarray(mazes.grid, dtype=np.uint8)
    path = np.ascontiguousarray(mazes.path, dtype=np.uint8)
    if grid.ndim != 3 or grid.shape[1] != grid.shape[2] or path.shape != grid.shape:
        raise ValueError(f"grid and path must both be (n, G, G), got {grid.shape} and {path.shape}")
    n, G = grid.shape[0], grid.shape[1]
    starts = np.ascontiguousarray(mazes.start, dtype=np.int64).reshape(n, 2)
    ends = np.ascontiguousarray(mazes.end, dtype=np.int64).reshape(n, 2)
    for name, pts in (("start", starts), ("end", ends)):
        if n and (pts.min() < 1 or pts.max() > G - 2):
            raise ValueError(f"{name} coordinates must lie inside the grid (1..{G - 2})")
    H = 2 * G + 2
    inputs = np.zeros((n, 3, H, H), np.uint8 if compact else np.float32)
    sols = np.zeros((n, H, H), np.uint8 if compact else np.int64)
    if n:
        _render_batch(grid.reshape(n, G * G), path.reshape(n, G * G), starts, ends, G, inputs, sols)
    return inputs, sols


def generate_mazes(
    n: int,
    size: int,
    seed: int = 0,
    *,
    algorithm: str = "dfs",
    start_dead_end: bool = True,
    cycles: float = 0.0,
    unique_path: bool = False,
    compact: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` mazes of size ``N = size`` in the easy-to-hard image layout.

    Returns ``(inputs float32 (n, 3, 2N+6, 2N+6), solutions int64 (n, 2N+6, 2N+6))``, or both
    uint8 with ``compact=True``. Deterministic per seed; maze ``i`` depends only on ``(seed, i)``.
    """
    return render_mazes(
        generate_grids(
            n, size, seed, algorithm=algorithm, start_dead_end=start_dead_end, cycles=cycles,
            unique_path=unique_path,
        ),
        compact=compact,
    )


#: Maze families a solver should hold across (see the module docstring); values are generator options.
FAMILIES = {
    "dfs": dict(algorithm="dfs", start_dead_end=True),
    "dfs_any": dict(algorithm="dfs", start_dead_end=False),
    "wilson": dict(algorithm="wilson", start_dead_end=False),
    "cycles": dict(algorithm="dfs", start_dead_end=False, cycles=0.1, unique_path=True),
}


def family_options(name: str) -> dict:
    """The generator options of family ``name`` (a copy)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown maze family {name!r}; valid: {', '.join(FAMILIES)}")
    return dict(FAMILIES[name])


def generate_mixture(n: int, sizes, seed: int = 0, *, families=tuple(FAMILIES), side: int | None = None,
                     compact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mazes, each of a family and a size drawn uniformly from ``families`` and ``sizes``, on one
    canvas of ``side`` pixels (default: the largest size's image side).

    A smaller maze sits at a random even offset and the rest of the canvas is wall (0) with target 0,
    which is what a larger image of the same maze would show, so a fully convolutional solver sees a
    valid maze.  Deterministic in ``(n, sizes, seed, families, side)``.
    """
    sizes = [int(s) for s in sizes]
    families = list(families)
    if not sizes or not families:
        raise ValueError("generate_mixture needs at least one size and one family")
    for s in sizes:
        _check_size(s)
    opts = [family_options(f) for f in families]
    side = int(side or max(image_side(s) for s in sizes))
    if side < max(image_side(s) for s in sizes):
        raise ValueError(f"side {side} is smaller than the largest maze image ({max(map(image_side, sizes))} px)")
    rng = np.random.default_rng([int(seed) % (1 << 32), 0x6D697831])
    fam, siz = rng.integers(len(families), size=int(n)), rng.integers(len(sizes), size=int(n))
    inputs = np.zeros((int(n), 3, side, side), np.uint8 if compact else np.float32)
    sols = np.zeros((int(n), side, side), np.uint8 if compact else np.int64)
    for f in range(len(families)):
        for j, size in enumerate(sizes):
            idx = np.flatnonzero((fam == f) & (siz == j))
            if not len(idx):
                continue
            x, y = generate_mazes(len(idx), size, seed=int(seed) * 7919 + 101 * f + j, compact=compact, **opts[f])
            h = x.shape[-1]
            room = (side - h) // 2
            for k, i in enumerate(idx):
                r, c = 2 * rng.integers(room + 1), 2 * rng.integers(room + 1)
                inputs[i, :, r:r + h, c:c + h] = x[k]
                sols[i, r:r + h, c:c + h] = y[k]
    return inputs, sols


# --------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------


def _validate(inputs: np.ndarray, solutions: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalize to (float32 (n,3,H,W) in {0,1}, int64 (n,H,W) in {0,1}) or raise MazeDataError."""
    inputs, solutions = _canonical(inputs, solutions, where)
    return inputs.astype(np.float32), solutions.astype(np.int64)


def _canonical(inputs: np.ndarray, solutions: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalize to (uint8 (n,3,H,W) in {0,1}, uint8 (n,H,W) in {0,1}) or raise MazeDataError.

    Accepts channels-first or channels-last inputs, values {0,1} or {0,255} (maze-dataset),
    and solutions as (n,H,W) {0,1}/{0,255} or an RGB image (maze-dataset: path pixels non-zero).
    """
    inputs = np.asarray(inputs)
    solutions = np.asarray(solutions)
    if inputs.dtype.kind not in "biuf" or solutions.dtype.kind not in "biuf":
        raise MazeDataError(
            f"{where}: expected numeric arrays, got inputs {inputs.dtype} / solutions {solutions.dtype}"
        )
    if inputs.ndim != 4:
        raise MazeDataError(f"{where}: inputs must be 4-D (n, 3, H, W) or (n, H, W, 3), got shape {inputs.shape}")
    if inputs.shape[1] != 3 and inputs.shape[-1] == 3:
        inputs = np.moveaxis(inputs, -1, 1)
    n, ch, H, W = inputs.shape
    if ch != 3 or H != W or H < 4:
        raise MazeDataError(
            f"{where}: inputs must be square RGB images (n, 3, H, H) or (n, H, H, 3), got shape {inputs.shape}"
        )
    inputs = _unit_values(inputs, where, "inputs")
    if solutions.ndim == 4:
        if solutions.shape[1] != 3 and solutions.shape[-1] == 3:
            solutions = np.moveaxis(solutions, -1, 1)
        if solutions.shape[1] != 3:
            raise MazeDataError(f"{where}: 4-D solutions must be RGB images, got shape {solutions.shape}")
        solutions = (solutions != 0).any(axis=1)
    if solutions.shape != (n, H, W):
        raise MazeDataError(
            f"{where}: solutions must have shape {(n, H, W)} to match inputs {inputs.shape}, "
            f"got {solutions.shape}"
        )
    solutions = _unit_values(solutions, where, "solutions")
    if n and (solutions & ~inputs.any(axis=1)).any():
        raise MazeDataError(f"{where}: solutions mark path pixels on walls of the inputs")
    if n:
        _check_endpoints(inputs, where)
    return np.ascontiguousarray(inputs), np.ascontiguousarray(solutions)


def _check_endpoints(inputs: np.ndarray, where: str) -> None:
    """Every maze must hold exactly one start (one solid green (0,1,0) block) and one end (one solid
    red (1,0,0) block): a blank, doubled or scattered marker is a broken file, not a harder maze."""
    r, g, b = inputs[:, 0] != 0, inputs[:, 1] != 0, inputs[:, 2] != 0
    for name, mask in (("start (green)", ~r & g & ~b), ("end (red)", r & ~g & ~b)):
        count = mask.sum(axis=(1, 2))
        rows, cols = mask.any(axis=2), mask.any(axis=1)
        H, W = mask.shape[1:]
        r0, r1 = rows.argmax(1), H - 1 - rows[:, ::-1].argmax(1)
        c0, c1 = cols.argmax(1), W - 1 - cols[:, ::-1].argmax(1)
        bad = (count == 0) | ((r1 - r0 + 1) * (c1 - c0 + 1) != count)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "none" if count[i] == 0 else f"{int(count[i])} pixels that are not one solid block"
            raise MazeDataError(f"{where}: maze {i} (and {int(bad.sum()) - 1} more) must have exactly one {name} "
                                f"block, found {what}")


def _unit_values(a: np.ndarray, where: str, name: str) -> np.ndarray:
    """``a`` as uint8 0/1 (from 0/1 or 0/255 values of any numeric dtype)."""
    if a.size == 0 or a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype == np.uint8:          # the common case (our files): one pass, no temporaries
        top = a.max()
        if top <= 1:
            return a
        if top == 255 and not np.any((a != 0) & (a != 255)):
            return (a != 0).view(np.uint8)
    elif np.all((a == 0) | (a == 1)):
        return a.astype(np.uint8)
    elif np.all((a == 0) | (a == 255)):
        return (a != 0).view(np.uint8)
    bad = a[(a != 0) & (a != 1)].ravel()[:3]
    raise MazeDataError(
        f"{where}: {name} must hold only 0/1 (or 0/255) values, found e.g. {bad.tolist()}"
    )


def save_mazes(path, inputs: np.ndarray, solutions: np.ndarray, *, compress: bool = False,
               dtype: str = "uint8") -> Path:
    """Save mazes atomically.

    ``path`` without a suffix: an easy-to-hard folder (``inputs.npy`` + ``solutions.npy``), created
    if needed.  ``path`` ending in ``.npz``: one archive with keys ``inputs`` and ``solutions``
    (``compress=True`` uses zip deflate).  ``dtype="uint8"`` (default) stores both as uint8 0/1;
    ``dtype="float32"`` stores float32 inputs and int64 solutions, as easy-to-hard's files do.
    Returns the path written.
    """
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"save_mazes: dtype must be 'uint8' or 'float32', got {dtype!r}")
    path = Path(path)
    inputs, solutions = _canonical(inputs, solutions, "save_mazes")
    if dtype == "float32":
        inputs, solutions = inputs.astype(np.float32), solutions.astype(np.int64)
    if path.suffix == "":
        path.mkdir(parents=True, exist_ok=True)
        for name, arr in (("inputs.npy", inputs), ("solutions.npy", solutions)):
            _atomic_write(path / name, lambda f, a=arr: np.save(f, a, allow_pickle=False))
    elif path.suffix == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = np.savez_compressed if compress else np.savez
        _atomic_write(path, lambda f: saver(f, inputs=inputs, solutions=solutions))
    else:
        raise ValueError(f"save_mazes: {path}: use a folder path (no suffix) or a .npz file")
    return path


def write_mazes(path, n: int, size: int, seed: int = 0, *, algorithm: str = "dfs", start_dead_end: bool = True,
                cycles: float = 0.0, unique_path: bool = False, dtype: str = "uint8", chunk: int = 1024) -> Path:
    """Generate ``n`` mazes (as :func:`generate_mazes`) straight into an easy-to-hard folder ``path``.

    The images are rendered ``chunk`` mazes at a time and streamed into ``inputs.npy`` and
    ``solutions.npy`` (each written to a temporary file and renamed into place), so memory holds one
    chunk whatever ``n`` is, and the files equal ``save_mazes(path, *generate_mazes(...), dtype=dtype)``.
    A ``.npz`` path is generated in memory and saved with :func:`save_mazes`.
    """
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"write_mazes: dtype must be 'uint8' or 'float32', got {dtype!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"write_mazes: chunk must be a positive int, got {chunk!r}")
    path = Path(path)
    opts = dict(algorithm=algorithm, start_dead_end=start_dead_end, cycles=cycles, unique_path=unique_path)
    if path.suffix != "":
        x, y = generate_mazes(n, size, seed, compact=dtype == "uint8", **opts)
        return save_mazes(path, x, y, dtype=dtype)
    grids = generate_grids(n, size, seed, **opts)       # small: (n, G, G) bytes
    H = image_side(size)
    x_dt, y_dt = (np.uint8, np.uint8) if dtype == "uint8" else (np.float32, np.int64)

    def header(f, shape, dt):
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dt)), "fortran_order": False, "shape": shape})

    def write_both(f_in):
        def write_solutions(f_sol):
            header(f_in, (int(n), 3, H, H), x_dt)
            header(f_sol, (int(n), H, H), y_dt)
            for i in range(0, int(n), int(chunk)):
                x, y = render_mazes(MazeGrids(*(a[i:i + chunk] for a in grids)), compact=dtype == "uint8")
                f_in.write(x.data)
                f_sol.write(y.data)
        _atomic_write(path / "solutions.npy", write_solutions, fsync=False)

    path.mkdir(parents=True, exist_ok=True)
    _atomic_write(path / "inputs.npy", write_both, fsync=False)   # reproducible from the seed: no fsync
    return path


def _load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise MazeDataError(f"{file}: missing file (expected a .npy array)")
    check_npy_file(file, MazeDataError)       # declared size vs the file and the cap, before allocating
    try:
        arr = np.load(file, allow_pickle=False)
    except Exception as exc:  # truncated header/data, pickled object arrays, garbage bytes
        raise MazeDataError(f"{file}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray):
        raise MazeDataError(f"{file}: expected a single .npy array, found an archive")
    return arr


def load_mazes(path) -> tuple[np.ndarray, np.ndarray]:
    """Load mazes as ``(inputs float32 (n,3,H,W), solutions int64 (n,H,W))``.

    Reads: an easy-to-hard folder (``inputs.npy`` + ``solutions.npy``); a ``.npz`` with keys
    ``inputs`` and ``solutions``; and maze-dataset rasterized arrays (uint8 0/255, channels last
    or first) in either of those containers, or one ``.npy`` of shape ``(n, 2, H, W, 3)`` /
    ``(n, 2, 3, H, W)`` holding (problem, solution) image pairs.  Anything missing, truncated or
    malformed raises :class:`MazeDataError`.
    """
    path = Path(path)
    if path.is_dir():
        inputs = _load_npy(path / "inputs.npy")
        solutions = _load_npy(path / "solutions.npy")
        return _validate(inputs, solutions, str(path))
    if not path.exists():
        raise MazeDataError(
            f"{path}: not found (expected an easy-to-hard folder with inputs.npy and solutions.npy, "
            f"or a .npz / .npy file)"
        )
    if path.suffix == ".npy":
        pairs = _load_npy(path)
        if pairs.ndim != 5 or pairs.shape[1] != 2:
            raise MazeDataError(
                f"{path}: expected maze-dataset (problem, solution) pairs of shape (n, 2, H, W, 3) "
                f"or (n, 2, 3, H, W), got {pairs.shape}"
            )
        return _validate(pairs[:, 0], pairs[:, 1], str(path))
    if path.suffix == ".npz":
        check_npz_file(path, MazeDataError)   # declared sizes vs the archive and the cap, before allocating
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as exc:  # BadZipFile, truncated archive, garbage bytes
            raise MazeDataError(
                f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise MazeDataError(f"{path}: expected a .npz archive, found a single .npy array")
        with z:
            missing = {"inputs", "solutions"} - set(z.files)
            if missing:
                raise MazeDataError(
                    f"{path}: .npz lacks key(s) {sorted(missing)} (expected 'inputs' and "
                    f"'solutions', found {sorted(z.files)})"
                )
            try:
                inputs = z["inputs"]
                solutions = z["solutions"]
            except Exception as exc:  # truncated/corrupt member, CRC error, pickled member
                raise MazeDataError(
                    f"{path}: a member of the .npz archive is unreadable ({type(exc).__name__}: {exc})"
                ) from None
        return _validate(inputs, solutions, str(path))
    raise MazeDataError(f"{path}: unknown format (expected a folder, a .npz or a .npy file)")


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def maze_accuracy(pred, target):
    """Per-maze correctness: True where every pixel of ``pred`` equals ``target``.

    ``pred`` and ``target`` are integer (n, H, W) arrays (numpy or torch); returns a bool (n,)
    array of the same library.
    """
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    eq = pred == target
    return eq.reshape(eq.shape[0], -1).all(1)


def wall_mask(inputs):
    """Bool (n, H, W), True on non-wall pixels (any channel non-zero), for a masked loss."""
    if inputs.ndim != 4 or inputs.shape[1] != 3:
        raise ValueError(f"inputs must be (n, 3, H, W), got {tuple(inputs.shape)}")
    return (inputs != 0).any(1)
