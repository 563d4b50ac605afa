"""Shared test helpers."""
import os
import subprocess
import sys
from pathlib import Path

import convrnn

SRC = Path(convrnn.__file__).resolve().parents[1]   # the convrnn under test (src/)


def run_cli(args, cwd, timeout=180):
    """Run ``python -m convrnn.cli ARGS`` in a subprocess against the convrnn under test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "convrnn.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
