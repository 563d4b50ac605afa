"""The search space of ``convrnn search``: a YAML mapping over multi-area and weight-tied ConvRNNs.

Every knob is given in one of three forms (:func:`parse_knob`):

* a list -> a categorical choice (``cells: [convgru, rgc, null]``; ``null`` = no cell);
* a range ``{low, high[, log][, step]}`` -> a float (``lr: {low: 1e-3, high: 1e-2, log: true}``),
  or an int when ``low`` and ``high`` are both ints;
* anything else -> a fixed value (``pool: 2``).

``family: multiarea`` (a :class:`~convrnn.models.multiarea.MultiAreaNetwork`, built through the
``greco_ff`` preset with explicit ``areas`` and ``feedback``, so ``convrnn train`` rebuilds it from
the exported config) — keys: ``areas`` (number of areas, named A1..An), ``cells`` (per area),
``cell_kwargs`` ({cell name: fixed kwargs}), ``width`` (channels of A1), ``growth`` (channel factor
from one area to the next), ``kernel`` (feedforward conv, per area), ``cell_kernel`` (the cell's
``kernel_size``, per area), ``pool`` (max-pool after each area's conv), ``steps``, ``feedback``
(``{rules: [add, gain, concat], max_edges: 2, edges: [[A3, A1], ...]}``: each candidate top-down
edge, later area -> earlier area, is absent (``none``) or present with one rule), ``dropout``
(every area), ``norm`` (every area: 0, GroupNorm groups or ``instance``), ``lr`` and ``train`` ({any other training config key: knob}).

``family: weight_tied`` (``convrnn_classifier``: encoder, one cell iterated, readout) — keys:
``cells``, ``cell_kwargs``, ``width``, ``cell_kernel``, ``recall``, ``steps``, ``lr``, ``train``.

:meth:`SearchSpace.sample` turns an Optuna trial (or anything with ``suggest_categorical``,
``suggest_int``, ``suggest_float``) into ``(model, model_kwargs, train_overrides, summary)``.
Malformed specs are refused at load with a message naming the key and what was expected.
"""
from __future__ import annotations

import math

__all__ = ["SearchSpace", "Knob", "parse_knob", "FAMILIES", "SPACE_KEYS"]

FAMILIES = ("multiarea", "weight_tied")
RULES = ("add", "gain", "concat")
SPACE_KEYS = {
    "multiarea": ("family", "areas", "cells", "cell_kwargs", "width", "growth", "kernel", "cell_kernel", "pool",
                  "steps", "feedback", "dropout", "norm", "lr", "train"),
    "weight_tied": ("family", "cells", "cell_kwargs", "width", "cell_kernel", "recall", "steps", "lr", "train"),
}
_DEFAULTS = {
    "multiarea": dict(areas=[2, 3], cells=["convgru"], width=[8, 16], growth=2, kernel=3, cell_kernel=3, pool=2,
                      steps=[4, 8], feedback=None, dropout=0.0, norm=0, lr=1e-3),
    "weight_tied": dict(cells=["convgru"], width=[16, 32], cell_kernel=3, recall=True, steps=[4, 8], lr=1e-3),
}
_FORMS = "a list of choices, a range {low, high[, log][, step]} or a fixed value"


def _bad(what: str, expected: str, got) -> ValueError:
    from .errors import short_repr
    return ValueError(f"search space: {what}: expected {expected}, got {short_repr(got)}")


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Knob:
    """One searchable value: ``kind`` is ``"choice"``, ``"int"``, ``"float"`` or ``"fixed"``."""

    def __init__(self, name: str, kind: str, choices=None, low=None, high=None, log=False, step=None, value=None):
        self.name, self.kind, self.choices = name, kind, choices
        self.low, self.high, self.log, self.step, self.value = low, high, log, step, value

    def sample(self, trial, name: str | None = None):
        """The value for ``trial`` under the parameter name ``name`` (default: the knob's)."""
        name = name or self.name
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return self.choices[0] if len(self.choices) == 1 else trial.suggest_categorical(name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def first(self):
        """A representative value (the first choice, the low end, the fixed value): for checks at load."""
        return self.value if self.kind == "fixed" else self.choices[0] if self.kind == "choice" else self.low

    def values(self) -> list:
        """Every value a choice or fixed knob can take (ranges: their two ends)."""
        return [self.value] if self.kind == "fixed" else list(self.choices) if self.kind == "choice" \
            else [self.low, self.high]

    def __repr__(self):
        return f"Knob({self.name!r}, {self.kind}, {self.values()})"


def parse_knob(name: str, spec, check=None) -> Knob:
    """A :class:`Knob` from ``spec`` (see the module docstring); ``check(what, value)`` validates every
    value it can take (both ends of a range)."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise _bad(name, "a non-empty list of choices", spec)
        for v in spec:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise _bad(f"{name} choice", "a string, number, bool or null", v)
        if len(set(map(repr, spec))) != len(spec):
            raise _bad(name, "distinct choices", spec)
        knob = Knob(name, "choice", choices=list(spec))
    elif isinstance(spec, dict) and ("low" in spec or "high" in spec):
        from .errors import check_keys
        check_keys(f"search space {name} range", spec, ("low", "high", "log", "step"))
        lo, hi, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
        if not (_is_num(lo) and _is_num(hi)) or lo > hi:
            raise _bad(f"{name} range", "numbers low <= high", spec)
        if not isinstance(log, bool):
            raise _bad(f"{name}.log", "true or false", log)
        if log and lo <= 0:
            raise _bad(f"{name} range", "low > 0 with log: true", spec)
        if step is not None and (not _is_num(step) or step <= 0 or log):
            raise _bad(f"{name}.step", "a number > 0 (and no log)", step)
        is_int = all(isinstance(v, int) for v in (lo, hi)) and (step is None or isinstance(step, int))
        knob = Knob(name, "int" if is_int else "float", low=lo if is_int else float(lo),
                    high=hi if is_int else float(hi), log=log, step=step)
    elif isinstance(spec, dict):
        raise _bad(name, _FORMS + " (a mapping needs low and high)", spec)
    else:
        knob = Knob(name, "fixed", value=spec)
    if check is not None:
        for v in knob.values():
            check(name, v)
    return knob


# ---- value checks ---------------------------------------------------------------------------------

def _pos_int(what, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _bad(what, "positive ints", v)


def _odd_int(what, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
        raise _bad(what, "odd positive ints (kernel sizes)", v)


def _pos_num(what, v):
    if not _is_num(v) or v <= 0:
        raise _bad(what, "numbers > 0", v)


def _fraction(what, v):
    if not _is_num(v) or not 0 <= v < 1:
        raise _bad(what, "numbers in [0, 1)", v)


def _bool(what, v):
    if not isinstance(v, bool):
        raise _bad(what, "true or false", v)


def _norm(what, v):
    if v != "instance" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
        raise _bad(what, "0 (none), a GroupNorm group count or 'instance'", v)


def _cell(what, v):
    if v is None:
        return
    import convrnn.models  # noqa: F401  (registers the built-in cells)
    from .registry import list_cells
    if not isinstance(v, str) or v not in list_cells():
        raise _bad(what, f"registered cell names ({', '.join(list_cells())}) or null (no cell)", v)


class SearchSpace:
    """A parsed, validated search space (see the module docstring)."""

    def __init__(self, spec: dict):
        from .errors import check_keys
        if not isinstance(spec, dict):
            raise _bad("space", "a mapping with a family (" + " | ".join(FAMILIES) + ") and its knobs", spec)
        family = spec.get("family", "multiarea")
        if family not in FAMILIES:
            raise _bad("family", " or ".join(FAMILIES), family)
        check_keys(f"search space ({family})", spec, SPACE_KEYS[family])
        self.family = family
        s = {**_DEFAULTS[family], **{k: v for k, v in spec.items() if k != "family"}}
        self.spec = dict(spec)
        self.cells = parse_knob("cells", s["cells"] if isinstance(s["cells"], list) else [s["cells"]], _cell)
        if family == "weight_tied" and None in self.cells.values():
            raise _bad("cells", "cell names (a weight-tied model needs a cell; null is for multiarea)", s["cells"])
        ck = s.get("cell_kwargs") or {}
        if not isinstance(ck, dict) or not all(isinstance(v, dict) for v in ck.values()):
            raise _bad("cell_kwargs", "a mapping {cell name: {fixed keyword arguments}}", ck)
        for name in ck:
            _cell("cell_kwargs key", name)
        self.cell_kwargs = {k: dict(v) for k, v in ck.items()}
        self.width = parse_knob("width", s["width"], _pos_int)
        self.cell_kernel = parse_knob("cell_kernel", s["cell_kernel"], _odd_int)
        self.steps = parse_knob("steps", s["steps"], _pos_int)
        self.lr = parse_knob("lr", s["lr"], _pos_num)
        train = s.get("train") or {}
        if not isinstance(train, dict):
            raise _bad("train", "a mapping {training config key: knob}", train)
        from .config import TrainConfig
        import dataclasses
        fields = [f.name for f in dataclasses.fields(TrainConfig)]
        check_keys("search space train", train, [f for f in fields if f not in ("model", "model_kwargs", "steps",
                                                                               "lr", "seed", "out_dir")])
        self.train = {k: parse_knob(f"train.{k}", v) for k, v in train.items()}
        if family == "weight_tied":
            self.recall = parse_knob("recall", s["recall"], _bool)
            return
        self.areas = parse_knob("areas", s["areas"], _pos_int)
        if self.areas.kind == "float":
            raise _bad("areas", "ints (a list or an int range)", s["areas"])
        self.max_areas = max(self.areas.values())
        if self.max_areas > 12:
            raise _bad("areas", "at most 12 areas", s["areas"])
        self.growth = parse_knob("growth", s["growth"], _pos_num)
        self.kernel = parse_knob("kernel", s["kernel"], _odd_int)
        self.pool = parse_knob("pool", s["pool"], _pos_int)
        self.dropout = parse_knob("dropout", s["dropout"], _fraction)
        self.norm = parse_knob("norm", s["norm"], _norm)
        self.feedback = self._parse_feedback(s.get("feedback"))

    def _parse_feedback(self, fb):
        from .errors import check_keys
        if fb is None or fb is False:
            return None
        if not isinstance(fb, dict):
            raise _bad("feedback", "a mapping {rules: [add, gain, concat], max_edges: N, edges: [[source, target], "
                       "...]} or null (no feedback)", fb)
        check_keys("search space feedback", fb, ("rules", "max_edges", "edges"))
        rules = fb.get("rules", ["add"])
        if not isinstance(rules, list) or not rules or any(r not in RULES for r in rules) or len(set(rules)) != len(rules):
            raise _bad("feedback.rules", f"a non-empty list of distinct rules from {', '.join(RULES)}", rules)
        max_edges = fb.get("max_edges")
        if max_edges is not None:
            _pos_int("feedback.max_edges", max_edges)
        names = [f"A{i + 1}" for i in range(self.max_areas)]
        edges = fb.get("edges")
        if edges is None:
            edges = [[names[j], names[i]] for j in range(len(names)) for i in range(j)]
        if not isinstance(edges, list):
            raise _bad("feedback.edges", "a list of [source, target] area pairs", edges)
        out = []
        for e in edges:
            if not (isinstance(e, (list, tuple)) and len(e) == 2 and all(x in names for x in e)):
                raise _bad("feedback.edges item", f"a [source, target] pair of areas among {', '.join(names)}", e)
            if names.index(e[0]) <= names.index(e[1]):
                raise _bad("feedback.edges item", "a top-down pair: the source after the target (e.g. [A3, A1])", e)
            if tuple(e) in out:
                raise _bad("feedback.edges", "distinct pairs", edges)
            out.append(tuple(e))
        if not out:
            raise _bad("feedback", "at least one candidate edge (more than one area)", fb)
        return {"rules": list(rules), "max_edges": max_edges, "edges": out}

    # ---- sampling ------------------------------------------------------------------------------------

    def _cell_entry(self, cell, kernel) -> tuple:
        kw = dict(self.cell_kwargs.get(cell, {}))
        if cell is not None:
            kw.setdefault("kernel_size", kernel)
        return cell, kw

    def sample(self, trial, base_model_kwargs: dict | None = None) -> tuple[str, dict, dict, dict]:
        """``(model, model_kwargs, train_overrides, summary)`` for ``trial``; ``base_model_kwargs`` (the
        base config's, e.g. in_channels, num_classes) are kept unless the space sets the same key."""
        base = dict(base_model_kwargs or {})
        steps = self.steps.sample(trial)
        train = {"steps": steps, "lr": self.lr.sample(trial)}
        train.update({k: knob.sample(trial) for k, knob in self.train.items()})
        width = self.width.sample(trial)
        if self.family == "weight_tied":
            cell, kw = self._cell_entry(self.cells.sample(trial), self.cell_kernel.sample(trial))
            mk = {**base, "cell": cell, "cell_kwargs": kw, "width": width, "recall": self.recall.sample(trial),
                  "steps": steps}
            summary = {"family": "weight_tied", "cell": cell, "width": width, "steps": steps}
            return "convrnn_classifier", mk, train, summary
        n = self.areas.sample(trial)
        growth = self.growth.sample(trial)
        dropout = self.dropout.sample(trial)
        norm = self.norm.sample(trial)
        areas = []
        for i in range(n):
            name = f"A{i + 1}"
            cell, kw = self._cell_entry(self.cells.sample(trial, f"{name}.cell"),
                                        self.cell_kernel.sample(trial, f"{name}.cell_kernel"))
            areas.append({"name": name, "channels": max(1, int(round(width * growth ** i))),
                          "kernel": self.kernel.sample(trial, f"{name}.kernel"), "pool": self.pool.sample(trial),
                          "cell": cell, "cell_kwargs": kw, "dropout": dropout, "norm": norm})
            if cell is None:
                del areas[-1]["cell_kwargs"]
        feedback = []
        if self.feedback is not None:
            cap = self.feedback["max_edges"]
            for src, tgt in self.feedback["edges"]:
                if int(src[1:]) > n or (cap is not None and len(feedback) >= cap):
                    continue
                rule = trial.suggest_categorical(f"fb.{src}-{tgt}", ["none"] + self.feedback["rules"])
                if rule != "none":
                    feedback.append({"source": src, "target": tgt, "rule": rule})
        mk = {"t_on": None, **base, "areas": areas, "feedback": feedback, "steps": steps}
        summary = {"family": "multiarea", "areas": n, "cells": [a["cell"] for a in areas],
                   "channels": [a["channels"] for a in areas], "kernels": [a["kernel"] for a in areas],
                   "feedback": [f"{e['source']}->{e['target']}:{e['rule']}" for e in feedback], "steps": steps,
                   "dropout": dropout, "norm": norm}
        return "greco_ff", mk, train, summary


class FirstChoice:
    """A stand-in trial that takes every knob's first value: checks a space builds before a search starts."""

    params: dict = {}

    def suggest_categorical(self, name, choices):
        return choices[0]

    def suggest_int(self, name, low, high, step=1, log=False):
        return low

    def suggest_float(self, name, low, high, step=None, log=False):
        return low
