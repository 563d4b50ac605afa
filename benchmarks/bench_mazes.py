"""Maze generator speed: convrnn.tasks.mazes vs maze-dataset (PyPI), and 50,000 9x9 mazes.

Run:  PYTHONPATH=src python benchmarks/bench_mazes.py [--n59 1000] [--md-n 30]

maze-dataset is optional.  If it is not importable here, the script looks for a separate
interpreter that has it (``$MAZE_DATASET_PYTHON``, else ``/tmp/mdvenv/bin/python``) and times it
there in a subprocess, so both sides are measured in one run.  maze-dataset 1.4.2 declares
jupyter/ipykernel as hard requirements; a throwaway venv with
``pip install --no-deps maze-dataset`` plus ``numpy matplotlib tqdm "muutils>=0.8.3,<0.9" zanj
jaxtyping typing_extensions`` is enough to generate (it does not pull torch for generation).

The 59x59 comparison uses maze-dataset's ``grid_n = 30`` (30 x 30 cells = maze size 59; its
rasterized side 4*30+4 = 124 equals ours, 2*59+6).  Three maze-dataset timings are given:
``gen_dfs`` alone (carving only), the dataset pipeline (``MazeDataset.from_config``: carving,
endpoints, solution), and the pipeline plus ``as_pixels`` rasterization (the comparable unit of
work to our ``generate_mazes``).

``--cli N`` adds the end-to-end figure: ``convrnn data mazes --size 59 --n N`` run as a fresh process
(interpreter start-up, imports, generation, validation and writing the files included), once with
the default uint8 files and once with ``--float32`` (the old float32/int64 files), per maze against
maze-dataset's ``gen_dfs`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from convrnn.tasks.mazes import generate_grids, generate_mazes

MD_SNIPPET = r"""
import json, sys, time
from maze_dataset import MazeDataset, MazeDatasetConfig, LatticeMazeGenerators
import maze_dataset
n = int(sys.argv[1]); grid_n = int(sys.argv[2])
out = {"version": getattr(maze_dataset, "__version__", None)}
LatticeMazeGenerators.gen_dfs((grid_n, grid_n))  # warm-up
t = time.perf_counter()
for _ in range(n):
    LatticeMazeGenerators.gen_dfs((grid_n, grid_n))
out["gen_dfs_ms"] = (time.perf_counter() - t) / n * 1e3
cfg = MazeDatasetConfig(name="bench", grid_n=grid_n, n_mazes=n, maze_ctor=LatticeMazeGenerators.gen_dfs)
t = time.perf_counter()
ds = MazeDataset.from_config(cfg, do_download=False, load_local=False, do_generate=True,
                             save_local=False, verbose=False, gen_parallel=False)
t1 = time.perf_counter()
for sm in ds:
    sm.as_pixels(show_endpoints=True, show_solution=True)
t2 = time.perf_counter()
out["dataset_ms"] = (t1 - t) / n * 1e3
out["dataset_plus_pixels_ms"] = (t2 - t) / n * 1e3
try:
    import importlib.metadata as md
    out["version"] = md.version("maze-dataset")
except Exception:
    pass
print("JSON" + json.dumps(out))
"""


def time_maze_dataset(n: int, grid_n: int) -> dict | None:
    try:
        import maze_dataset  # noqa: F401

        cmd = [sys.executable]
    except ImportError:
        py = os.environ.get("MAZE_DATASET_PYTHON", "/tmp/mdvenv/bin/python")
        if not os.path.exists(py):
            print(
                "maze-dataset: not installed here and no interpreter at "
                f"{py} (set MAZE_DATASET_PYTHON) -> skipped"
            )
            return None
        cmd = [py]
    proc = subprocess.run(
        cmd + ["-c", MD_SNIPPET, str(n), str(grid_n)], capture_output=True, text=True, timeout=900
    )
    for line in proc.stdout.splitlines():
        if line.startswith("JSON"):
            return json.loads(line[4:])
    print("maze-dataset: run failed -> skipped\n" + proc.stderr[-2000:])
    return None


def cli_ms_per_maze(n: int, extra: list[str], repeats: int = 3) -> tuple[float, int]:
    """Best-of-``repeats`` wall time per maze of ``convrnn data mazes --size 59 --n n`` as a new process,
    and the bytes it wrote."""
    best, size = float("inf"), 0
    for _ in range(repeats):
        d = tempfile.mkdtemp()
        try:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "convrnn.cli", "data", "mazes", "--size", "59", "--n", str(n),
                            "--out", f"{d}/m59", *extra], check=True, capture_output=True)
            best = min(best, time.perf_counter() - t)
            size = sum(f.stat().st_size for f in os.scandir(f"{d}/m59"))
        finally:
            shutil.rmtree(d)
    return best / n * 1e3, size


def per_maze_ms(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n59", type=int, default=1000, help="our mazes per 59x59 timing")
    ap.add_argument("--md-n", type=int, default=30, help="maze-dataset mazes per timing")
    ap.add_argument("--n9", type=int, default=50_000, help="9x9 mazes for the bulk timing")
    ap.add_argument("--cli", type=int, default=3000, help="mazes for the end-to-end CLI timing (0: skip)")
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    t = time.perf_counter()
    generate_mazes(2, 9, seed=0)
    generate_mazes(2, 9, seed=0, algorithm="wilson", cycles=0.1)
    print(f"first call (numba cache load or compile): {time.perf_counter() - t:.2f} s")

    # 59x59 (30 x 30 cells): grid level and full (rendered to 124 x 124).  The first full call
    # pays the kernel's page faults on fresh output memory (~300 KiB per 59x59 maze); the
    # best-of-3 figures run on reused memory.
    t = time.perf_counter()
    generate_mazes(args.n59, 59, seed=1)
    ours_cold = (time.perf_counter() - t) / args.n59 * 1e3
    ours_grid = per_maze_ms(lambda n: generate_grids(n, 59, seed=1), args.n59)
    ours_full = per_maze_ms(lambda n: generate_mazes(n, 59, seed=1), args.n59)
    ours_wilson = per_maze_ms(lambda n: generate_mazes(n, 59, seed=1, algorithm="wilson"), args.n59)
    print(f"convrnn 59x59 dfs   : {ours_grid * 1e3:8.1f} us/maze grid only, "
          f"{ours_full * 1e3:8.1f} us/maze incl. rendering (n={args.n59}, best of 3)")
    print(f"convrnn 59x59 dfs   : {ours_cold * 1e3:8.1f} us/maze incl. rendering, first call (cold memory)")
    print(f"convrnn 59x59 wilson: {ours_wilson * 1e3:8.1f} us/maze incl. rendering")

    md = time_maze_dataset(args.md_n, 30)
    if md is not None:
        print(f"maze-dataset {md.get('version')} grid_n=30 (n={args.md_n}):")
        print(f"  gen_dfs only              : {md['gen_dfs_ms']:8.2f} ms/maze")
        print(f"  dataset (dfs+solve)       : {md['dataset_ms']:8.2f} ms/maze")
        print(f"  dataset + as_pixels       : {md['dataset_plus_pixels_ms']:8.2f} ms/maze")
        print(f"ratio maze-dataset gen_dfs / ours (grid only)      : {md['gen_dfs_ms'] / ours_grid:8.0f}x")
        print(f"ratio maze-dataset dataset+pixels / ours (rendered): "
              f"{md['dataset_plus_pixels_ms'] / ours_full:8.0f}x warm, "
              f"{md['dataset_plus_pixels_ms'] / ours_cold:.0f}x cold")
    if args.cli:
        for label, extra in (("uint8 (default)", []), ("--float32", ["--float32"])):
            ms, size = cli_ms_per_maze(args.cli, extra)
            line = (f"convrnn data mazes --size 59 --n {args.cli} {label:>15}: {ms:6.3f} ms/maze end to end, "
                    f"{size / 2**20:6.0f} MiB written")
            if md is not None:
                line += f"; maze-dataset gen_dfs / ours = {md['gen_dfs_ms'] / ms:.0f}x (goal >= 50x)"
            print(line)
    print(f"reference figure: maze-dataset paper 132 ms/maze (DFS, >32) -> ours is "
          f"{132.0 / ours_full:.0f}x faster warm, {132.0 / ours_cold:.0f}x cold (need >= 50x, i.e. <= 2.64 ms)")

    # 50,000 9x9 mazes including rendering, one cold call (fresh output arrays)
    t = time.perf_counter()
    inputs, sols = generate_mazes(args.n9, 9, seed=2)
    dt = time.perf_counter() - t
    print(f"{args.n9} 9x9 mazes incl. rendering: {dt:.2f} s total ({dt / args.n9 * 1e6:.1f} us/maze), "
          f"inputs {inputs.shape} {inputs.dtype} {inputs.nbytes / 2**20:.0f} MiB, "
          f"solutions {sols.dtype} {sols.nbytes / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
