"""The cluttered-glyph benchmark as a task: classify the digit on top (:mod:`convrnn.tasks.clutter`).

Options (the training config's ``data_kwargs``): ``size`` (canvas px, default 32), ``levels`` (the
difficulty levels the training and validation images are drawn from, equally many of each; default all,
0..6), ``knobs`` (overrides of the level table, e.g. ``{noise: 0.0}``) and, for data from a file or
folder (the config's ``data``: a clutter ``.npz`` or an ImageFolder), ``val_fraction`` and ``split_seed``.
``convrnn eval`` evaluates per difficulty level (``--levels 0,3,6``) on fresh images.
"""
from __future__ import annotations

import numpy as np

from .base import Task, parse_levels
from .classification import split_train_val, to_tensors
from .clutter import CLASSES, MAX_LEVEL, generate_clutter, level_knobs, load_clutter

__all__ = ["ClutterTask"]

_VAL_SEED = 1_000_003     # validation images come from (seed + this): never the training stream


class ClutterTask(Task):
    """Ten-way classification of the top digit of a cluttered image: cross-entropy, accuracy per image."""

    name = "clutter"
    OPTIONS = ("size", "levels", "knobs", "val_fraction", "split_seed")
    sample_difficulty_name = "occluded fraction"

    def __init__(self, size: int = 32, levels=None, knobs=None, val_fraction: float = 0.2, split_seed: int = 0,
                 **unknown):
        from ..errors import check_int, check_keys, check_number
        if unknown:
            check_keys("clutter data_kwargs", unknown, self.OPTIONS)
        self.size = check_int("clutter size", size, 8, 1024)
        levels = list(range(MAX_LEVEL + 1)) if levels is None else levels
        if not isinstance(levels, (list, tuple)) or not levels:
            raise ValueError(f"clutter levels must be a non-empty list of levels 0..{MAX_LEVEL}, got {levels!r}")
        self.levels = [check_int("clutter levels", v, 0, MAX_LEVEL) for v in levels]
        if knobs is not None and not isinstance(knobs, dict):
            raise ValueError(f"clutter knobs must be a mapping of knob -> value, got {knobs!r}")
        self.knobs = dict(knobs or {})
        level_knobs(0, **self.knobs)                    # refuses an unknown knob or a bad value now
        self.val_fraction = float(check_number("clutter val_fraction", val_fraction, 0, 1, min_open=True,
                                               max_open=True))
        self.split_seed = check_int("clutter split_seed", split_seed, 0)
        self.classes = list(CLASSES)

    def options(self) -> dict:
        return {"size": self.size, "levels": self.levels, "knobs": self.knobs, "val_fraction": self.val_fraction,
                "split_seed": self.split_seed}

    def generate(self, n: int, seed: int, levels=None):
        """``n`` images drawn equally from ``levels`` (default the task's), level ``levels[j]`` taking the
        stream indices ``[j * n, (j + 1) * n)`` of ``seed``: images, labels, each image's level."""
        levels = self.levels if levels is None else levels
        counts = [n // len(levels) + (j < n % len(levels)) for j in range(len(levels))]
        parts = [generate_clutter(c, self.size, lv, seed, start=j * n, **self.knobs)
                 for j, (lv, c) in enumerate(zip(levels, counts)) if c]
        x = np.concatenate([p["images"] for p in parts])
        y = np.concatenate([p["labels"] for p in parts])
        lv = np.concatenate([np.full(c, v, np.int64) for v, c in zip(levels, counts) if c])
        return x, y, lv

    def datasets(self, cfg):
        """Fresh images (``cfg.n_train`` from ``cfg.seed``, ``cfg.n_val`` from another stream), or the file/
        folder ``cfg.data`` split into training and validation by ``split_seed``."""
        self.check_config(cfg)
        if cfg.data:
            x, y, classes = load_clutter(cfg.data)
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                raise ValueError(f"clutter data {cfg.data}: images are {x.shape[-2]}x{x.shape[-1]} px, the task's "
                                 f"size is {self.size}; set data_kwargs.size")
            self.classes = classes
            train, val = split_train_val(x, y, self.val_fraction, self.split_seed)
            return to_tensors(*train), to_tensors(*val)
        x, y, _ = self.generate(cfg.n_train, cfg.seed)
        xv, yv, _ = self.generate(cfg.n_val, cfg.seed + _VAL_SEED)
        return to_tensors(x, y), to_tensors(xv, yv)

    def eval_data(self, level, n, seed, data=None):
        """``n`` fresh images at difficulty ``level`` (seeded by ``seed``), or the first ``n`` of ``data``."""
        if data:
            x, y, _ = load_clutter(data)
            return to_tensors(x[:n], y[:n])
        x, y, _ = self.generate(n, seed, [int(level)])
        return to_tensors(x, y)

    def level_info(self, level) -> dict:
        return {"knobs": level_knobs(int(level), **self.knobs)}

    @classmethod
    def eval_levels(cls, args) -> list:
        return parse_levels(args.levels)

    @classmethod
    def eval_options(cls, args, run_config: dict) -> dict:
        """The training run's canvas size and knob overrides (the levels come from ``--levels``)."""
        kw = dict(run_config.get("data_kwargs", {}))
        return {k: kw[k] for k in ("size", "knobs") if k in kw}
