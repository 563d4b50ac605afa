"""One readable training loop (nanoGPT-style) for every task.

``train(cfg)`` generates or loads the task's data, builds the model from the registry, and
optimises one of the objectives in :mod:`convrnn.losses`. Data order, the task's train-time
augmentation (``task.augment``, e.g. crop and flip for CIFAR) and the progressive loss's random
draws are functions of ``(seed, step)`` only, so a run resumed from a checkpoint continues to the
same result as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import (CheckpointError, init_from, load_training_state, read_trainer, resolve_checkpoint, save_model,
                         save_training_state)
from .fileio import RunLock, atomic_write_text
from .config import TrainConfig
from .evaluate import evaluate_level
from .halting import ACT, PonderNet
from .losses import act_loss, all_steps_loss, pondernet_loss, progressive_loss
from .models import create_model
from .runtime import autocast, is_channels_last, pick_device, resolve_amp, use_channels_last
from .tasks import get_task

#: ``val_acc`` holds the task's validation score whatever it is (``Task.metric``: accuracy; MRI: SSIM),
#: ``val_metric`` names it (last, so the columns before keep their places)
CSV_FIELDS = ["step", "epoch", "loss", "lr", "val_acc", "val_steps", "seconds", "val_metric"]


def metric_label(metric: str) -> str:
    """How logs name a validation metric: ``acc`` for accuracy, else the metric's own name."""
    return "acc" if metric == "accuracy" else metric


def lr_factor(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int, seconds: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 0 at the last step (or at ``time_limit`` if that comes first)."""
    warm = cfg.warmup_epochs * steps_per_epoch
    if cfg.time_limit:
        warm = min(warm, 0.1 * total)
    if warm > 0 and step < warm:
        return min(1.0, (step + 1) / warm)      # a warm-up shorter than one step must not multiply the lr
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - warm) / max(1.0, total - warm)
    if cfg.time_limit:
        progress = max(progress, seconds / cfg.time_limit)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def augment_generator(cfg: TrainConfig, step: int) -> torch.Generator:
    """The generator of step ``step``'s train-time augmentation: a function of ``(seed, step)`` only."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_033 + step + 1)


def compute_loss(cfg: TrainConfig, model, x, y, crit, step: int):
    if cfg.loss == "final":
        return crit(model(x, steps=cfg.steps, tbptt=cfg.tbptt).output, y)
    if cfg.loss == "all_steps":
        return all_steps_loss(model(x, steps=cfg.steps, return_steps=True, shrink=False, tbptt=cfg.tbptt), y, crit)
    if cfg.loss == "progressive":
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        return progressive_loss(model, x, y, cfg.steps, cfg.alpha, crit, generator=g)[0]
    if cfg.loss == "act":
        return act_loss(model(x, steps=cfg.steps, halting=ACT(cfg.act_eps), tbptt=cfg.tbptt), y, cfg.tau, crit)
    out = model(x, steps=cfg.steps, halting=PonderNet(), return_steps=True, shrink=False, tbptt=cfg.tbptt)
    return pondernet_loss(out, y, cfg.lambda_p, cfg.beta, crit)


def validate(cfg, task, model, x, y, device) -> tuple[float, float]:
    """Accuracy and mean steps on (x, y), with the halting the model is trained for (else fixed steps);
    a task with its own ``validate`` hook (MRI: mean SSIM, iterations) answers instead."""
    if task.validate is not None:
        res = task.validate(model, x, y, cfg, device)
        model.train()
        return res
    halting = {"act": ACT(cfg.act_eps), "ponder": "ponder"}.get(cfg.loss, "fixed")
    res = evaluate_level(model, task, x, y, cfg.steps, halting, cfg.batch_size * 2, str(device), curve=False,
                         amp=cfg.amp)
    model.train()
    return res["accuracy"], res["mean_steps"]


def _read_csv(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def _init_distributed(device: torch.device):
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group (NCCL on GPUs, gloo on CPUs) and
    return ``(rank, world, device)``; otherwise ``(0, 1, device)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, on_eval=None) -> dict:
    """Train ``cfg``. Under ``torchrun --nproc_per_node N`` every process takes 1/N of each batch
    and DistributedDataParallel averages the gradients, so N processes follow the same trajectory as
    one process on the whole batch; process 0 alone validates and writes files.

    ``on_eval``: an optional callback, called (by process 0) after every validation with one dict:
    ``step`` (optimizer steps done), ``epoch`` (epochs done), ``score`` (the validation score, the
    task's ``metric``), ``steps`` (mean steps), ``metric``, ``model`` (the module being trained, in
    train mode: leave it so) and ``input_shape`` (one validation sample's shape). An exception it
    raises (e.g. a search pruning the run) ends training and propagates; that epoch's checkpoint is
    not written.

    The run owns ``cfg.out_dir`` while it trains (:class:`convrnn.fileio.RunLock`): a second run
    into the same folder is refused with :class:`convrnn.fileio.RunLockedError` naming the owner's pid."""
    if int(os.environ.get("RANK", "0")) != 0:       # torchrun: process 0 alone owns the folder
        return _train(cfg, resume, progress, on_eval)
    with RunLock(cfg.out_dir):
        return _train(cfg, resume, progress, on_eval)


def _train(cfg: TrainConfig, resume: bool, progress: bool, on_eval=None) -> dict:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    rank, world, device = _init_distributed(pick_device(cfg.device))
    if world > 1 and cfg.loss == "progressive":
        raise ValueError("loss=progressive runs several forward passes per backward, which DistributedDataParallel "
                         "does not support here; use final, all_steps, act or ponder under torchrun")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes ({world})")
    main = rank == 0
    amp = resolve_amp(cfg.amp, device)
    task = get_task(cfg.task, **cfg.data_kwargs)      # built once from the config's options
    label = metric_label(task.metric)
    out_dir = Path(cfg.out_dir)
    ckpt_dir = out_dir / "checkpoint"
    if not resume and resolve_checkpoint(ckpt_dir) is not None:
        raise ValueError(f"{ckpt_dir} already holds a checkpoint: pass --resume to continue it, or choose another "
                         "out_dir")
    if resume and read_trainer(ckpt_dir).get("config") != _resumable(cfg):
        raise CheckpointError(f"{ckpt_dir}: the checkpoint was made with a different config; resume with the same one")
    (x_train, y_train), (x_val, y_val) = task.datasets(cfg)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(f"{cfg.task}: the {'training' if len(x_train) == 0 else 'validation'} set is empty "
                         f"(n_train={cfg.n_train}, n_val={cfg.n_val}, data={cfg.data!r}); nothing to train on")
    augment = task.augment                       # train-time transform(x, generator=...) or None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        x_train, y_train = x_train.to(device), y_train.to(device)

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_kwargs)
    if cfg.init and not resume:
        init_from(model, cfg.init)
    model = model.to(device)
    model = use_channels_last(model, cfg.channels_last, device)
    channels_last = is_channels_last(model)
    recurrent = list(model.recurrent_parameters())       # every model family's weight-tied recurrent block
    rec_ids = {id(p) for p in recurrent}
    groups = [{"params": [p for p in model.parameters() if id(p) not in rec_ids], "lr": cfg.lr},
              {"params": recurrent, "lr": cfg.lr * cfg.recurrent_lr_scale}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    if cfg.compile:
        (model.cell if hasattr(model, "cell") else model).compile()   # in place: state-dict keys stay the same
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        # halting units and skipped steps leave some parameters without gradient on some calls
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=True)

    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    start, elapsed = 0, 0.0
    if resume:
        trainer = load_training_state(ckpt_dir, model, opt)
        start, elapsed = trainer["step"], trainer.get("seconds", 0.0)
    csv_path = out_dir / "metrics.csv"
    rows = _read_csv(csv_path, start) if resume else []
    writer = None
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        writer = _tensorboard(cfg, out_dir)

    def save(step):
        if not main:
            return
        atomic_write_text(csv_path, _csv_text(rows))
        atomic_write_text(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=1))   # with its checkpoint
        save_training_state(ckpt_dir, model, opt, {"step": step, "seconds": elapsed + time.perf_counter() - t0,
                                                   "config": _resumable(cfg)})

    model.train()
    t0 = time.perf_counter()
    bar = tqdm(total=total, initial=start, disable=None if progress and main else True, desc="train", unit="step",
               dynamic_ncols=True)
    say = bar.write if progress and main else (lambda msg: None)
    for step in range(start, total):
        epoch, i = divmod(step, steps_per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].to(x_train.device)
        x, y = x_train[idx], y_train[idx]
        if augment is not None:      # drawn for the whole batch, so N processes see what one process would
            x = augment(x, generator=augment_generator(cfg, step))
        x, y = x[rank::world].to(device, non_blocking=True), y[rank::world].to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        seconds = elapsed + time.perf_counter() - t0
        factor = lr_factor(cfg, step, total, steps_per_epoch, seconds)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * factor
        with autocast(amp, device):
            if task.loss is not None:        # a task with its own objective (MRI reconstruction)
                loss = task.loss(net, x, y, cfg, step)
            else:
                loss = compute_loss(cfg, net, x, y, task.criterion(x, cfg), step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or enable clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", epoch=epoch)
        done = step + 1
        end_of_epoch = done % steps_per_epoch == 0
        out_of_time = bool(cfg.time_limit) and elapsed + time.perf_counter() - t0 >= cfg.time_limit
        if world > 1 and cfg.time_limit:          # every process must stop at the same step
            import torch.distributed as dist
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        end_of_epoch = end_of_epoch or out_of_time
        if done % cfg.log_every == 0 or end_of_epoch:
            row = {"step": done, "epoch": epoch, "loss": f"{loss.item():.6f}", "lr": f"{opt.param_groups[0]['lr']:.3e}",
                   "val_acc": "", "val_steps": "", "seconds": f"{elapsed + time.perf_counter() - t0:.1f}",
                   "val_metric": ""}
            if main and end_of_epoch and ((epoch + 1) % cfg.eval_every == 0 or done == total or out_of_time):
                acc, st = validate(cfg, task, model, x_val, y_val, device)
                row.update(val_acc=f"{acc:.4f}", val_steps=f"{st:.2f}", val_metric=task.metric)
                say(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss.item():.4f}  val {label} {acc:.4f}  steps {st:.2f}")
                if on_eval is not None:
                    on_eval({"step": done, "epoch": epoch + 1, "score": acc, "steps": st, "metric": task.metric,
                             "model": model, "input_shape": tuple(x_val.shape[1:])})
            rows.append(row)
            if writer:
                writer.add_scalar("train/loss", loss.item(), done)
                if row["val_acc"]:
                    writer.add_scalar(f"val/{label}", float(row["val_acc"]), done)
                    writer.add_scalar("val/steps", float(row["val_steps"]), done)
        if done % cfg.ckpt_every == 0 or end_of_epoch:
            save(done)
        if out_of_time:
            say(f"time limit of {cfg.time_limit:.0f} s reached after {done} of {total} steps")
            total = done
            break
    bar.close()
    save(total)
    if main:
        save_model(out_dir / "model.safetensors", model, {"step": str(total)})
    if writer:
        writer.close()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    last = next((r for r in reversed(rows) if r["val_acc"]), {})
    return {"steps": total, "metric": task.metric, "val_acc": float(last.get("val_acc", "nan") or "nan"),
            "val_steps": float(last.get("val_steps", "nan") or "nan"), "out_dir": str(out_dir)}


def _resumable(cfg: TrainConfig) -> dict:
    d = cfg.to_dict()
    for k in ("num_threads", "device", "tensorboard", "out_dir"):
        d.pop(k)
    return d


def _csv_text(rows: list[dict]) -> str:
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _tensorboard(cfg, out_dir):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("tensorboard=true needs the tensorboard package: pip install 'convrnn[tensorboard]'") from None
    return SummaryWriter(str(out_dir / "tb"))
