"""Tasks: one module per task (generator, dataset, metrics) plus the glue the trainer needs.

Every task subclasses :class:`~convrnn.tasks.base.Task`, whose module docstring is the protocol the
trainer, the evaluator and ``convrnn eval`` use (``datasets``, ``criterion``, ``correct``, ``eval_data``,
optional ``loss`` / ``validate``, ...). A task is built once from the training config's ``data_kwargs``:
``get_task(cfg.task, **cfg.data_kwargs)``.
"""
from __future__ import annotations

import importlib

from .base import Task

__all__ = ["TASKS", "Task", "get_task", "task_class"]

TASKS = {"mazes": "convrnn.tasks.maze_task:MazeTask", "pathfinder": "convrnn.tasks.pathfinder_task:PathfinderTask",
         "classification": "convrnn.tasks.classification:ClassificationTask",
         "clutter": "convrnn.tasks.clutter_task:ClutterTask",
         "mri": "convrnn.tasks.mri_recon:MRITask"}
# MRI data and operators (fastMRI format, phantoms, masks, FFTs, metrics) live in convrnn.mri (re-exported by
# convrnn.tasks.mri), the trainer glue and evaluation in convrnn.tasks.mri_recon.


def task_class(name: str) -> type[Task]:
    """The task class ``name`` (its optional dependencies checked)."""
    from ..errors import require, unknown_name      # (imports torch: not needed by the data generators)
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    module, cls = TASKS[name].split(":")
    if name in ("mazes", "pathfinder", "clutter"):      # their generators are numba kernels
        require("numba", "tasks")
    if name == "mri":
        require("h5py", "mri")
    return getattr(importlib.import_module(module), cls)


def get_task(name: str, **options) -> Task:
    """The task object ``name`` built with ``options`` (a training config's ``data_kwargs``, e.g.
    ``preset=`` for PathFinder); each task refuses options it does not know, naming the valid ones."""
    return task_class(name)(**options)
