"""Fit learned-halting heads on the mixture backbone with two objectives: the task loss (CE, the default)
and the per-step 0/1 error (is the whole maze right?); save both heads."""
import torch, json
from convrnn.checkpoint import load_model
from convrnn.config import TrainConfig
from convrnn.tasks import get_task
from convrnn.halting_training import record_rollouts, fit_dynamics_halting
torch.set_num_threads(1)
run = json.load(open("/tmp/mz/ta/config.json"))
model = load_model("/tmp/mz/ta").eval()
task = get_task("mazes")
import os
F, L, E = [], [], []
for level in (() if os.path.exists("/tmp/mz/heads/cache.pt") else (9, 13)):
    dk = dict(run["data_kwargs"]); dk["sizes"] = [level]
    cfg = TrainConfig.from_dict({**run, "train_size": level, "n_train": 128, "n_val": 1, "seed": 777, "data": None,
                                 "val_size": None, "data_kwargs": dk})
    (x, y), _ = task.datasets(cfg)
    f, l = record_rollouts(model, x, y, lambda xb, c=cfg: task.criterion(xb, c), 100)
    _, e = record_rollouts(model, x, y, lambda xb: (lambda lo, t, reduce=False: (~task.correct(lo, t, xb)).float()), 100)
    F.append(f); L.append(l); E.append(e)
F, L, E = (torch.cat(F), torch.cat(L), torch.cat(E)) if F else torch.load("/tmp/mz/heads/cache.pt")
torch.save((F, L, E), "/tmp/mz/heads/cache.pt")
import sys
variants = {"ce": (L, 0.05, 0.01), "err": (E, 0.05, 0.01), "mix": (E + 0.1 * L, 0.05, 0.01)}
if len(sys.argv) > 1:
    variants = {"ce_lp2": (L, 0.2, 0.01), "ce_b001": (L, 0.05, 0.001), "err_lp2": (E, 0.2, 0.01), "err_b001": (E, 0.05, 0.001)}
for name, (target, lp, b) in variants.items():
    torch.manual_seed(777)
    head = fit_dynamics_halting(F, target, lambda_p=lp, beta=b, epochs=40, seed=777)
    torch.save(head.state_dict(), f"/tmp/mz/heads/{name}.pt")
    print(name, "saved", flush=True)
