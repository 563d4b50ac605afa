"""Data-parallel training under torchrun: 2 CPU processes on gloo follow the single-process run."""
import json
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import SRC, run_cli
from safetensors.torch import load_file

CFG = dict(task="mazes", model="dtnet_recall_mazes", model_kwargs={"width": 4, "steps": 2}, train_size=5,
           n_train=16, n_val=4, epochs=2, batch_size=8, lr=0.01, warmup_epochs=0, steps=2, loss="final",
           device="cpu", channels_last=False, num_threads=1, ckpt_every=100, log_every=1, seed=3, clip=0.0,
           amp="none")   # bit-level agreement of 1 vs 2 processes is an fp32 property (bf16 rounds per shard)


def _torchrun(args, cwd):
    import os
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "convrnn.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_two_processes_match_one_process_on_the_whole_batch(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    one = run_cli(["train", "--no-progress", str(cfg), f"out_dir={tmp_path / 'one'}"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _torchrun(["train", "--no-progress", str(cfg), f"out_dir={tmp_path / 'two'}"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert a.keys() == b.keys()
    import convrnn
    torch.manual_seed(CFG["seed"])
    init = convrnn.create_model(CFG["model"], **CFG["model_kwargs"]).state_dict()
    trained = max((a[k] - init[k]).abs().max().item() for k in a)
    apart = max((a[k] - b[k]).abs().max().item() for k in a)
    assert trained > 1e-3, trained                                       # training moved the weights...
    assert apart < 1e-4 * max(1.0, trained), apart                       # ...the same way in both runs
    rows = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4                                            # process 0 alone logs: 4 steps
    assert json.loads((tmp_path / "two" / "config.json").read_text())["batch_size"] == 8


def test_progressive_loss_is_refused_under_torchrun(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "loss": "progressive"}))
    res = _torchrun(["train", "--no-progress", str(cfg), f"out_dir={tmp_path / 'p'}"], tmp_path)
    assert res.returncode != 0 and "progressive" in res.stderr
