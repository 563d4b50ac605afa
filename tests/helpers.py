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


# The child of run_cli_killed: the training loop calls convrnn.train.lr_factor once at the start of every
# optimizer step with that step's index; at step AFTER (AFTER steps done, their checkpoints written) the
# process kills itself with SIGKILL: no cleanup, no final save, like a kill from outside at a known step.
_KILL_AT_STEP = """
import os, signal, sys
import convrnn.train as t
after, args, lr_factor = int(sys.argv[1]), sys.argv[2:], t.lr_factor
def lr_factor_or_kill(cfg, step, *rest, **kw):
    if step >= after:
        os.kill(os.getpid(), signal.SIGKILL)
    return lr_factor(cfg, step, *rest, **kw)
t.lr_factor = lr_factor_or_kill
from convrnn.cli import main
sys.exit(main(args))
"""


def run_cli_killed(args, cwd, after_steps: int, timeout=180):
    """``run_cli(args)`` for a command that trains, with the process killed (SIGKILL) once
    ``after_steps`` optimizer steps are done; its ``returncode`` is then ``-signal.SIGKILL``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-c", _KILL_AT_STEP, str(int(after_steps)), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
