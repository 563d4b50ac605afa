"""Checkpoints: safetensors weights (config in the metadata) + a JSON training state.

A checkpoint folder holds ``model.safetensors``, ``optimizer.safetensors`` and ``trainer.json``.
Every file is written atomically (temporary file + ``os.replace``) and ``trainer.json`` last, with
the step recorded in each file, so a run killed mid-write leaves either the previous consistent
checkpoint or a mismatch that :func:`load_training_state` reports. Nothing is unpickled: weights are
safetensors and everything else is JSON.

This module imports no model: :func:`load_model` finds the class a checkpoint names in the
registry's architecture table (:func:`convrnn.registry.register_architecture`).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from safetensors import safe_open

from .fileio import atomic_write, atomic_write_text
from .registry import get_architecture

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or inconsistent."""


def _tensors(sd: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_model(path, model, metadata: dict | None = None) -> None:
    """Weights as safetensors; the model's class and config go into the metadata."""
    meta = {"config": json.dumps(model.config.to_dict()), "architecture": type(model).__name__,
            **{k: str(v) for k, v in (metadata or {}).items()}}
    atomic_write(path, lambda f: f.write(save(_tensors(model.state_dict()), metadata=meta)))


def _open_safetensors(path: Path):
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found (expected a .safetensors checkpoint)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return meta, load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None


def resolve_model_file(path) -> Path:
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def load_model(path, map_location="cpu"):
    """Rebuild a model from a checkpoint folder or ``.safetensors`` file (class and config read from
    the metadata)."""
    path = resolve_model_file(path)
    meta, tensors = _open_safetensors(path)
    if "config" not in meta:
        raise CheckpointError(f"{path}: no model config in the safetensors metadata (not a convrnn checkpoint?)")
    arch = meta.get("architecture", "RecurrentModel")
    try:
        config_cls, build = get_architecture(arch)
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]}") from None
    try:
        model = build(config_cls.from_dict(json.loads(meta["config"])))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad model config in metadata: {e}") from None
    _load_state(model, tensors, path)
    return model.to(map_location)


def check_finite_tensors(tensors: dict, path) -> None:
    """Refuse weights holding NaN or inf, naming the first such tensor and how many values are bad."""
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()):
            bad = int((~torch.isfinite(v)).sum())
            if bad:
                raise CheckpointError(f"{path}: tensor {k!r} has {bad} non-finite values (NaN/inf) of {v.numel()}; "
                                      "the weights are corrupt or come from a diverged run")


def _load_state(model, tensors, path):
    check_finite_tensors(tensors, path)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:       # every size mismatch, with the tensor names and shapes, on one line
        detail = "; ".join(ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()) or str(e).strip()
        raise CheckpointError(f"{path}: weights do not fit the model: {detail}") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def init_from(model, source) -> None:
    """Copy the weights of ``source`` (a bundled model's name, a run folder or a ``.safetensors`` file)
    into ``model`` (fine-tuning); they must fit its architecture exactly."""
    bundled = PRETRAINED_DIR / f"{source}.safetensors"
    path = bundled if "/" not in str(source) and bundled.is_file() else resolve_model_file(source)
    if not path.is_file():
        raise ValueError(f"init: {source!r} is neither a bundled model nor a checkpoint file/folder")
    _load_state(model, _open_safetensors(path)[1], path)


def load_pretrained(model, name: str):
    """Load the bundled weights ``pretrained/<name>.safetensors`` into ``model`` (built by the registry
    recipe ``name``), after checking it was built with the config they were trained with."""
    path = PRETRAINED_DIR / f"{name}.safetensors"
    if not path.is_file():
        available = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
        raise ValueError(f"no bundled weights for model {name!r}; bundled: {', '.join(available) or 'none'}")
    meta, tensors = _open_safetensors(path)
    trained = type(model.config).from_dict(json.loads(meta.get("config", "{}"))).to_dict()   # newer fields: defaults
    asked = model.config.to_dict()
    trained.pop("steps", None), asked.pop("steps", None)     # the default step count is free to change
    if trained != asked:
        raise ValueError(f"pretrained {name!r} was trained with config {meta.get('config')}; "
                         "create it without overrides (only steps= may differ)")
    _load_state(model, tensors, path)
    return model


# ---- optimizer state as safetensors + JSON ------------------------------------------------------

def _flatten_optimizer(sd: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def _sibling(ckpt_dir: Path, suffix: str) -> Path:
    return ckpt_dir.with_name(ckpt_dir.name + suffix)


def save_training_state(ckpt_dir, model, optimizer, trainer: dict) -> None:
    """Write model, optimizer and ``trainer`` (JSON-able dict with at least ``step``).

    The new set goes to ``<ckpt_dir>.new`` and is swapped in by two renames; the previous set stays
    in ``<ckpt_dir>.old`` until the swap is done, so a kill at any moment leaves a complete
    checkpoint that :func:`resolve_checkpoint` finds."""
    ckpt_dir = Path(ckpt_dir)
    new, old = _sibling(ckpt_dir, ".new"), _sibling(ckpt_dir, ".old")
    shutil.rmtree(new, ignore_errors=True)
    step = str(trainer["step"])
    save_model(new / "model.safetensors", model, {"step": step})
    tensors, ometa = _flatten_optimizer(optimizer.state_dict())
    atomic_write(new / "optimizer.safetensors",
                 lambda f: f.write(save(_tensors(tensors), metadata={"step": step, "json": json.dumps(ometa)})))
    atomic_write_text(new / "trainer.json", json.dumps(trainer, indent=1))
    if ckpt_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(ckpt_dir, old)
    os.replace(new, ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(ckpt_dir) -> Path | None:
    """The folder holding the latest complete checkpoint: ``ckpt_dir``, or ``<ckpt_dir>.old`` when a
    save was killed between its two renames; ``None`` when there is none."""
    ckpt_dir = Path(ckpt_dir)
    for d in (ckpt_dir, _sibling(ckpt_dir, ".old")):
        if (d / "trainer.json").is_file():
            return d
    return None


def read_trainer(ckpt_dir) -> dict:
    """The JSON training state of a checkpoint folder (without loading any weights)."""
    tpath = (resolve_checkpoint(ckpt_dir) or Path(ckpt_dir)) / "trainer.json"
    try:
        trainer = json.loads(tpath.read_text())
        int(trainer["step"])
    except FileNotFoundError:
        raise CheckpointError(f"{tpath}: not found; nothing to resume in {ckpt_dir}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{tpath}: corrupt training state ({e})") from None
    return trainer


def load_training_state(ckpt_dir, model, optimizer) -> dict:
    trainer = read_trainer(ckpt_dir)
    ckpt_dir = resolve_checkpoint(ckpt_dir)
    step = str(trainer["step"])
    mmeta, mtensors = _open_safetensors(ckpt_dir / "model.safetensors")
    ometa, otensors = _open_safetensors(ckpt_dir / "optimizer.safetensors")
    if mmeta.get("step") != step or ometa.get("step") != step:
        raise CheckpointError(f"{ckpt_dir}: files are from different steps (trainer {step}, model "
                              f"{mmeta.get('step')}, optimizer {ometa.get('step')}); the run was killed mid-save")
    _load_state(model, mtensors, ckpt_dir / "model.safetensors")
    try:
        optimizer.load_state_dict(_unflatten_optimizer(otensors, json.loads(ometa["json"])))
    except (KeyError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt_dir / 'optimizer.safetensors'}: optimizer state does not fit ({e})") from None
    return trainer
