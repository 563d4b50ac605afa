"""The task protocol: what :func:`convrnn.train.train`, :mod:`convrnn.evaluate` and ``convrnn eval`` ask
of a task, as a base class whose hooks have defaults.

A task is built once from the training config's ``data_kwargs`` (``get_task(cfg.task, **cfg.data_kwargs)``);
its ``__init__`` checks the options (an unknown key is refused with the valid keys named) and nothing
changes them afterwards. :meth:`Task.datasets` refuses a config whose ``data_kwargs`` disagree with them.

Training (:func:`convrnn.train.train`)

* :meth:`datasets` ``(cfg) -> ((x_train, y_train), (x_val, y_val))``, tensors.
* :meth:`criterion` ``(x, cfg) -> crit(logits, target, reduce=True)`` (default: cross-entropy);
  the trainer wraps it in the config's objective (``cfg.loss``).
* :attr:`loss` — optional ``loss(net, x, y, cfg, step) -> scalar`` replacing that objective (MRI:
  NMSE + SSIM of a reconstruction under a fresh mask); ``None``: the config's objective.
* :attr:`validate` — optional ``validate(model, x, y, cfg, device) -> (score, steps)`` replacing the
  trainer's validation (accuracy with the halting the model is trained for); ``None``: that.
* :attr:`metric` — the name of the validation score (``"accuracy"``; MRI: ``"ssim"``). It is written in
  the ``val_acc`` column of ``metrics.csv`` whatever it is; the ``val_metric`` column names it.
* :attr:`augment` — a train-time transform ``augment(x, generator=...)``, or ``None``.

Evaluation (:mod:`convrnn.evaluate`, ``convrnn eval``)

* :meth:`correct` ``(logits, target, x) -> (B,) bool`` (default: argmax equals the label).
* :meth:`eval_data` ``(level, n, seed, data=None) -> (x, y)``: ``n`` fresh samples at a difficulty level
  (or the first ``n`` of the file/folder ``data``).
* :meth:`step_cap` ``(level, train_steps)``: the default iteration cap at a level (default 4x training).
* :meth:`sample_difficulty` ``(x, y)``: a difficulty per sample (e.g. a maze's solution length), named
  :attr:`sample_difficulty_name`, or ``None``.
* :meth:`level_info` ``(level)`` / :meth:`report_info` ``()``: extra fields for a level's / the whole
  result (PathFinder: the canvas a level is drawn on; mazes: the family).
* :meth:`plot_examples` ``(model, result, path, level=None, device="cpu")``: an example figure, or ``None``.
* :meth:`eval_levels` ``(args)`` and :meth:`eval_options` ``(args, run_config)`` (class methods): the
  levels and constructor options ``convrnn eval`` takes from its command line and the run's config.
"""
from __future__ import annotations


def parse_levels(text: str, kind=int) -> list:
    """``"9,13,19"`` -> ``[9, 13, 19]`` (``kind`` converts each item); at least one level."""
    try:
        vals = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {'integers' if kind is int else 'numbers'}, "
                         f"got {text!r}") from None
    if not vals:
        raise ValueError("expected at least one level")
    return vals


def _plain(v):
    """A value as it would read back from JSON/YAML, for comparing options (tuples as lists, paths as str)."""
    if isinstance(v, (list, tuple)):
        return [_plain(u) for u in v]
    if isinstance(v, dict):
        return {k: _plain(u) for k, u in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class Task:
    """Base class of every task; see the module docstring for the protocol."""

    name = "task"
    #: the validation score's name (the ``val_acc`` column holds it; ``val_metric`` names it)
    metric = "accuracy"
    #: a train-time transform ``augment(x, generator=...)``, or None
    augment = None
    #: optional ``loss(net, x, y, cfg, step)`` replacing the config's objective; None: that objective
    loss = None
    #: optional ``validate(model, x, y, cfg, device) -> (score, steps)``; None: the trainer's accuracy
    validate = None
    sample_difficulty_name = "difficulty"

    def options(self) -> dict:
        """The options this task was built with (keys of the config's ``data_kwargs``)."""
        return {}

    def check_config(self, cfg) -> None:
        """Refuse a config whose ``data_kwargs`` differ from the options this task was built with."""
        mine = self.options()
        given = dict(getattr(cfg, "data_kwargs", None) or {})
        differ = {k: v for k, v in given.items() if k not in mine or _plain(mine[k]) != _plain(v)}
        if differ:
            raise ValueError(f"{self.name}: the config's data_kwargs set {differ}, but this task was built with "
                             f"{mine or 'no options'}; build it from the config: "
                             f"get_task(cfg.task, **cfg.data_kwargs)")

    # ---- training ----------------------------------------------------------------------------------

    def datasets(self, cfg):
        """``((x_train, y_train), (x_val, y_val))`` as tensors."""
        raise NotImplementedError(f"task {self.name!r} has no training data")

    def criterion(self, x, cfg):
        """``crit(logits, target, reduce=True)`` for the batch ``x``: cross-entropy by default."""
        from ..losses import cross_entropy
        return cross_entropy

    # ---- evaluation --------------------------------------------------------------------------------

    def correct(self, logits, target, x):
        """``(B,)`` bool: is each answer right? By default the argmax against integer labels."""
        return logits.argmax(1) == target

    def eval_data(self, level, n, seed, data=None):
        """``n`` samples at difficulty ``level`` (seeded by ``seed``), or the first ``n`` of ``data``."""
        raise NotImplementedError(f"task {self.name!r} has no per-level evaluation data")

    def step_cap(self, level, train_steps) -> int:
        """The default iteration cap at ``level``: 4x the training steps (a task may grow it with the level)."""
        return 4 * int(train_steps)

    def sample_difficulty(self, x, y):
        """A difficulty per sample (e.g. a maze's solution length), or None."""
        return None

    def level_info(self, level) -> dict:
        """Extra fields for the result of a level evaluated on fresh samples."""
        return {}

    @classmethod
    def options_at_level(cls, data_kwargs: dict, level) -> dict:
        """A training run's ``data_kwargs`` for data at one difficulty ``level`` only (``convrnn fit-halting``
        rolls a run's data out level by level, with ``train_size = level``); by default unchanged."""
        return dict(data_kwargs)

    def report_info(self) -> dict:
        """Extra fields for the whole evaluation result."""
        return {}

    def plot_examples(self, model, result, path, level=None, device="cpu"):
        """Write an example figure to ``path`` and return its path, or None (no figure)."""
        return None

    # ---- convrnn eval ------------------------------------------------------------------------------

    @classmethod
    def eval_levels(cls, args) -> list:
        """The difficulty levels ``convrnn eval`` evaluates, from its arguments."""
        raise ValueError(f"convrnn eval: task {cls.name!r} has no difficulty levels")

    @classmethod
    def eval_options(cls, args, run_config: dict) -> dict:
        """Constructor options for ``convrnn eval`` from its arguments and the run's ``config.json``."""
        return {}
