"""Tasks: one module per task (generator, dataset, metrics) plus the glue the trainer needs.

A task object provides ``datasets(cfg) -> ((x_train, y_train), (x_val, y_val))`` as tensors,
``criterion(x, cfg)`` returning ``crit(logits, target, reduce=True)`` and
``correct(logits, target, x) -> (B,) bool``.
"""
from __future__ import annotations

import importlib

TASKS = {"mazes": "convrnn.tasks.maze_task:MazeTask", "pathfinder": "convrnn.tasks.pathfinder_task:PathfinderTask",
         "classification": "convrnn.tasks.classification:ClassificationTask",
         "mri": "convrnn.tasks.mri_recon:MRITask"}
# MRI data and operators (fastMRI format, phantoms, masks, FFTs, metrics) live in convrnn.mri (re-exported by
# convrnn.tasks.mri), the trainer glue and evaluation in convrnn.tasks.mri_recon. A task may define loss(net, x, y, cfg, step) and
# validate(model, x, y, cfg, device) -> (score, steps) to replace the classification-style defaults.


def get_task(name: str, **options):
    """The task object ``name``; ``options`` go to its constructor (e.g. ``preset=`` for PathFinder)."""
    from ..errors import require, unknown_name      # (imports torch: not needed by the data generators)
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    module, cls = TASKS[name].split(":")
    if name in ("mazes", "pathfinder"):      # their generators are numba kernels
        require("numba", "tasks")
    if name == "mri":
        require("h5py", "mri")
    return getattr(importlib.import_module(module), cls)(**options)
