"""Multi-area ConvRNNs unrolled "biologically" (Nayebi et al. 2018; Greco et al. 2025; CORnet-RT).

A network is a list of *areas*. Each area is a feedforward convolution (with ReLU and optional
max-pool), the integration of top-down feedback, an optional registered recurrent cell (the
lateral recurrence), dropout and an ``output`` identity module that hooks can attach to. Edges:

* feedforward: implied by the order of ``areas`` (area i reads area i-1), or listed explicitly
  (``feedforward=[{"source": "V1", "target": "V4"}, ...]``; several sources are resized to the
  nearest source's size and concatenated on channels);
* feedback: ``feedback=[{"source": "IT", "target": "V2", "rule": "add"}]`` from a later area to an
  earlier one.

Unrolling (t = 0, 1, ..., steps-1; a_k(t) is area k's output, s_k its cell state)::

    frame(t) = image                  if t < t_on       (t_on=None: every step)
             = blank (mean gray 0.5)  otherwise
    a_1(t)   = Area_1( frame(t),                 feedback from a_j(t-1), s_1(t-1) )
    a_k(t)   = Area_k( a_{k-1}(t-1) (ff sources), feedback from a_j(t-1), s_k(t-1) )
    y(t)     = readout( a_L(t) )                 (global pool + linear, every step)

Every edge between areas, feedforward or feedback, costs one step; at t = 0 an area's absent inputs
are zeros (absent feedback contributes nothing). **Our choice:** the image -> first-area edge has no
delay (area 1 sees frame t at step t), and the readout reads the readout area at the same step. So a
change of the input at step t reaches area k (1-based) first at step t + k - 1 and the logits of an
L-area chain at step t + L - 1.

Inside an area at step t::

    d   = pool( relu( conv( concat(resized ff inputs) ) ) )          # bottom-up drive
    f_e = resize( P_e * a_src(t-1) )    for every feedback edge e     # P_e: 1x1 conv, no bias
    d   = d + Σ_add f_e                  rule "add"
    d   = d ⊙ (1 + tanh(Σ_gain f_e))     rule "gain"  (a gain in (0, 2); 1 when feedback is 0)
    d   = relu( post( concat(d, f_e for "concat") ) )  rule "concat": 3x3 "post-integration" conv
    h, s = cell(d, s)                    (cell None: h = d)
    a   = output( dropout(h) )

``P_e`` is applied before the bilinear resize: both are linear and act on different axes, so this
equals resize-then-project and is cheaper. With the ``rgc`` cell the "add" feedback is passed through
the cell's ``feedback=`` argument (added to its bypass drive) instead of to ``d``. Dropout acts on
the transmitted output only (the cell keeps its undropped state) with a fresh mask per step; it is
on in training and off in eval unless ``dropout_at_test`` (Monte Carlo dropout).

The whole network state is a dict keyed by area name, ``{name: {"output": a_k, "cell": s_k}}`` (``s_k``
as the area's cell returns it, ``None`` for an area without a cell), of batch-first tensors: a pytree
that :func:`convrnn.cells.base.map_state` walks, so :func:`convrnn.halting.run_recurrence` runs it under
any halting policy ("fixed", "confidence", "stable", "convergence", and "act"/"ponder" through a
halting unit on the readout area) and ``state=`` continues a run.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import (DictConfig, check_bool, check_choice, check_finite_state, check_image, check_int, check_keys,
                      check_number, check_positive_int, finite_checks_off, unknown_name)
from ..halting import RecurrentOutput, get_policy, run_recurrence
from ..layers import AvgPoolHead, HaltingUnit, MaxPoolHead
from ..registry import create_cell, get_cell_class, register_architecture, register_model

__all__ = ["MultiAreaConfig", "MultiAreaNetwork", "Area", "RULES", "AREA_KEYS"]

RULES = ("add", "gain", "concat")
READOUTS = {"avgpool": AvgPoolHead, "maxpool": MaxPoolHead}
AREA_KEYS = ("name", "channels", "kernel", "stride", "pool", "cell", "cell_kwargs", "dropout", "act", "norm")
_AREA_DEFAULTS = dict(kernel=3, stride=1, pool=1, cell=None, cell_kwargs=None, dropout=0.0, act="relu", norm=0)
_ACTS = ("relu", None)
_UNSET = object()


def _default_areas() -> list:
    return [dict(name="A1", channels=16, pool=2, cell="convgru"),
            dict(name="A2", channels=32, pool=2, cell="convgru")]


def _check_rule(what: str, rule) -> None:
    if rule not in RULES:
        raise ValueError(f"{what}: unknown rule {rule!r}. Valid rules: {', '.join(RULES)}")


def _edge(what: str, e, keys: tuple) -> dict:
    """Normalise an edge given as a dict or a (source, target[, rule]) sequence."""
    if isinstance(e, dict):
        check_keys(what, e, keys)
        d = dict(e)
    elif isinstance(e, (list, tuple)) and 2 <= len(e) <= len(keys):
        d = dict(zip(keys, e))
    else:
        raise ValueError(f"{what}: expected a dict with keys {', '.join(keys)} or a (source, target) pair, got {e!r}")
    for k in ("source", "target"):
        if k not in d:
            raise ValueError(f"{what}: missing {k!r} in {e!r}")
    return d


@dataclass
class MultiAreaConfig(DictConfig):
    """Configuration of a :class:`MultiAreaNetwork` (see the module docstring for the semantics).

    ``areas``: list of dicts with keys ``name`` and ``channels`` (required) and ``kernel`` (3),
    ``stride`` (1, of the feedforward conv), ``pool`` (1: max-pool factor after it), ``cell`` (None:
    feedforward only, or a registered cell name), ``cell_kwargs`` ({}), ``dropout`` (0.0), ``act``
    ("relu" or None, after the feedforward conv), ``norm`` (0: none; the number of groups of a
    GroupNorm between the feedforward conv and its activation; ``"instance"``: one group per channel,
    i.e. instance normalisation with an affine map, which works at any width). ``feedforward``: None
    (a chain in area order) or a list of {source, target} edges. ``feedback``: list of {source,
    target, rule} with rule one of "add" (default), "gain", "concat". ``t_on``: steps the image is shown (None: all of them);
    ``blank``: the value (or one value per input channel) shown afterwards.
    """

    _what = "multi-area config"

    in_channels: int = 3
    num_classes: int = 10
    areas: list = field(default_factory=_default_areas)
    feedforward: list | None = None
    feedback: list = field(default_factory=list)
    steps: int = 10
    t_on: int | None = None
    blank: float | list = 0.5
    readout: str = "avgpool"
    readout_area: str | None = None
    dropout_at_test: bool = False
    halt_bias: float = -2.0

    # -- validation --------------------------------------------------------------------------------
    def __post_init__(self):
        for k in ("in_channels", "num_classes", "steps"):
            check_positive_int(f"multi-area config: {k}", getattr(self, k))
        if self.t_on is not None:
            check_int("multi-area config: t_on (or null)", self.t_on, 0)
        if isinstance(self.blank, (list, tuple)):
            if len(self.blank) != self.in_channels or not all(isinstance(v, (int, float)) for v in self.blank):
                raise ValueError(f"multi-area config: blank must be a number or {self.in_channels} numbers "
                                 f"(one per input channel), got {self.blank!r}")
            self.blank = [float(v) for v in self.blank]
        elif isinstance(self.blank, bool) or not isinstance(self.blank, (int, float)):
            raise ValueError(f"multi-area config: blank must be a number or a list, got {self.blank!r}")
        if self.readout not in READOUTS:
            raise unknown_name("readout", self.readout, READOUTS)
        check_bool("multi-area config: dropout_at_test", self.dropout_at_test)
        if not isinstance(self.areas, (list, tuple)) or not self.areas:
            raise ValueError("multi-area config: areas must be a non-empty list of dicts")
        self.areas = [self._check_area(i, a) for i, a in enumerate(self.areas)]
        names = self.area_names
        if len(set(names)) != len(names):
            raise ValueError(f"multi-area config: area names must be unique, got {names}")
        index = {n: i for i, n in enumerate(names)}

        def check_name(what, n):
            if n not in index:
                raise ValueError(f"{what}: unknown area {n!r}. Valid areas: {', '.join(names)}")

        if self.readout_area is not None:
            check_name("multi-area config: readout_area", self.readout_area)
        if self.feedforward is not None:
            ff = []
            for e in self.feedforward:
                d = _edge("feedforward edge", e, ("source", "target"))
                for k in ("source", "target"):
                    check_name(f"feedforward edge {d['source']!r} -> {d['target']!r}", d[k])
                if index[d["source"]] >= index[d["target"]]:
                    raise ValueError(f"feedforward edge {d['source']!r} -> {d['target']!r}: the source must come "
                                     f"before the target in the area order ({', '.join(names)}); "
                                     "top-down edges belong in feedback")
                if index[d["target"]] == 0:
                    raise ValueError(f"feedforward edge to {d['target']!r}: the first area reads the image only")
                if (d["source"], d["target"]) in {(x["source"], x["target"]) for x in ff}:
                    raise ValueError(f"feedforward edge {d['source']!r} -> {d['target']!r} is listed twice")
                ff.append(d)
            fed = {d["target"] for d in ff}
            missing = [n for n in names[1:] if n not in fed]
            if missing:
                raise ValueError(f"multi-area config: areas {missing} have no feedforward input")
            self.feedforward = ff
        fb = []
        if not isinstance(self.feedback, (list, tuple)):
            raise ValueError(f"multi-area config: feedback must be a list of edges, got {self.feedback!r}")
        for e in self.feedback:
            d = _edge("feedback edge", e, ("source", "target", "rule"))
            d.setdefault("rule", "add")
            for k in ("source", "target"):
                check_name(f"feedback edge {d['source']!r} -> {d['target']!r}", d[k])
            _check_rule(f"feedback edge {d['source']!r} -> {d['target']!r}", d["rule"])
            if index[d["source"]] <= index[d["target"]]:
                raise ValueError(f"feedback edge {d['source']!r} -> {d['target']!r}: the source must come after "
                                 f"the target in the area order ({', '.join(names)}); lateral recurrence is the "
                                 "area's cell")
            if (d["source"], d["target"]) in {(x["source"], x["target"]) for x in fb}:
                raise ValueError(f"feedback edge {d['source']!r} -> {d['target']!r} is listed twice")
            fb.append(d)
        self.feedback = fb

    @staticmethod
    def _check_area(i, a) -> dict:
        if not isinstance(a, dict):
            raise ValueError(f"multi-area config: area {i} must be a dict, got {a!r}")
        check_keys(f"area {a.get('name', i)!r}", a, AREA_KEYS)
        for k in ("name", "channels"):
            if k not in a:
                raise ValueError(f"multi-area config: area {i} needs a {k!r}")
        d = {**_AREA_DEFAULTS, **a}
        d["cell_kwargs"] = dict(d["cell_kwargs"] or {})
        name = d["name"]
        if not isinstance(name, str) or not name.isidentifier() or name == "image" \
                or hasattr(nn.ModuleDict(), name):
            raise ValueError(f"multi-area config: area name {name!r} must be a Python identifier other than "
                             "'image' and the nn.ModuleDict attributes")
        for k in ("channels", "stride", "pool"):
            check_positive_int(f"area {name!r}: {k}", d[k])
        check_int(f"area {name!r}: kernel", d["kernel"], 1, odd=True)
        if d["cell"] is not None:
            get_cell_class(d["cell"])
        check_number(f"area {name!r}: dropout", d["dropout"], 0, 1, max_open=True)
        check_choice(f"area {name!r}: act", d["act"], _ACTS)
        if d["norm"] != "instance":
            check_int(f"area {name!r}: norm (GroupNorm groups, 0 for none, or 'instance')", d["norm"], 0)
            if d["norm"] and d["channels"] % d["norm"]:
                raise ValueError(f"area {name!r}: norm must divide channels ({d['channels']}) for GroupNorm, got "
                                 f"{d['norm']}")
        return d

    @property
    def area_names(self) -> list:
        return [a["name"] for a in self.areas]

    def ff_sources(self) -> dict:
        """Target area -> list of its feedforward source areas (in area order)."""
        names = self.area_names
        if self.feedforward is None:
            return {n: ([names[i - 1]] if i else []) for i, n in enumerate(names)}
        src = {n: [] for n in names}
        for e in self.feedforward:
            src[e["target"]].append(e["source"])
        return {n: sorted(s, key=names.index) for n, s in src.items()}


class StepDropout(nn.Module):
    """Elementwise dropout, active in training and, with ``at_test``, in eval (Monte Carlo)."""

    def __init__(self, p: float, at_test: bool = False):
        super().__init__()
        self.p, self.at_test = float(p), at_test

    def forward(self, x):
        if self.p == 0.0:
            return x
        return F.dropout(x, self.p, training=self.training or self.at_test)

    def extra_repr(self):
        return f"p={self.p}, at_test={self.at_test}"


class ContiguousGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` computed in fp32 on an NCHW copy, returned in the input's dtype and memory format:
    PyTorch's CPU kernel is 10-20x slower on bf16 channels_last maps (0.4 ms vs 10 ms for 32 x 16 x 32 x 32,
    forward + backward, one thread), which made a normalised network 3x slower per step under autocast."""

    def forward(self, x):
        cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        y = F.group_norm(x.contiguous().float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)
        return y.contiguous(memory_format=torch.channels_last) if cl else y


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Area(nn.Module):
    """One area: ``conv -> [norm] -> act -> pool -> feedback integration -> cell -> dropout -> output``."""

    def __init__(self, spec: dict, in_channels: int, feedback: list, dropout_at_test: bool = False):
        super().__init__()
        self.name, ch = spec["name"], spec["channels"]
        self.channels = ch
        k, s = spec["kernel"], spec["stride"]
        self.kernel, self.stride, self.pool_size = k, s, spec["pool"]
        self.conv = nn.Conv2d(in_channels, ch, k, stride=s, padding=k // 2)
        groups = ch if spec["norm"] == "instance" else spec["norm"]
        self.norm = ContiguousGroupNorm(groups, ch) if groups else nn.Identity()
        self.act = nn.ReLU() if spec["act"] == "relu" else nn.Identity()
        self.pool = nn.MaxPool2d(spec["pool"]) if spec["pool"] > 1 else nn.Identity()
        # feedback: {source: (source channels, rule)}
        self.rules = {src: rule for src, _, rule in feedback}
        self.feedback = nn.ModuleDict({src: nn.Conv2d(c, ch, 1, bias=False) for src, c, _ in feedback})
        n_cat = sum(r == "concat" for r in self.rules.values())
        self.post = nn.Conv2d(ch * (1 + n_cat), ch, 3, padding=1) if n_cat else None
        self.cell = create_cell(spec["cell"], ch, ch, **spec["cell_kwargs"]) if spec["cell"] else None
        self._cell_feedback = self.cell is not None and \
            "feedback" in inspect.signature(self.cell.forward).parameters
        self.dropout = StepDropout(spec["dropout"], dropout_at_test)
        self.output = nn.Identity()

    def out_size(self, h: int, w: int) -> tuple:
        k, s, p = self.kernel, self.stride, self.pool_size
        h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        return h // p, w // p

    def forward(self, ff: list, feedback: dict, state=None):
        """``ff``: feedforward input maps (resized to the last one's size and concatenated);
        ``feedback``: {source name: source output from the previous step} (absent sources left out).
        Returns ``(output, cell state or None)``."""
        size = ff[-1].shape[-2:]
        x = torch.cat([_resize(f, size) for f in ff], 1) if len(ff) > 1 else ff[0]
        d = self.pool(self.act(self.norm(self.conv(x))))
        add = gain = None
        cat = []
        for src, rule in self.rules.items():
            if src not in feedback:            # absent (t = 0): contributes exactly zero
                if rule == "concat":
                    cat.append(torch.zeros_like(d))
                continue
            f = _resize(self.feedback[src](feedback[src]), d.shape[-2:])
            if rule == "add":
                add = f if add is None else add + f
            elif rule == "gain":
                gain = f if gain is None else gain + f
            else:
                cat.append(f)
        cell_fb = None
        if add is not None:
            if self._cell_feedback:
                cell_fb = add
            else:
                d = d + add
        if gain is not None:
            d = d * (1 + torch.tanh(gain))
        if self.post is not None:
            d = F.relu(self.post(torch.cat([d] + cat, 1)))
        if self.cell is None:
            h, new_state = d, None
        elif cell_fb is not None:
            h, new_state = self.cell(d, state, feedback=cell_fb)
        else:
            h, new_state = self.cell(d, state)
        return self.output(self.dropout(h)), new_state


class MultiAreaNetwork(nn.Module):
    """Areas in a ``nn.ModuleDict`` (``model.areas["V1"].output`` is hookable), a readout on the
    readout area (default: the last) and a halting unit for ACT/PonderNet."""

    def __init__(self, config: MultiAreaConfig | None = None, **overrides):
        super().__init__()
        cfg = config or MultiAreaConfig()
        if overrides:
            check_keys("multi-area config", overrides, [f.name for f in dataclasses.fields(MultiAreaConfig)])
            cfg = MultiAreaConfig.from_dict({**dataclasses.asdict(cfg), **overrides})
        self.config = cfg
        names = cfg.area_names
        self._ff = cfg.ff_sources()
        chans = {a["name"]: a["channels"] for a in cfg.areas}
        self._fb = {n: [e["source"] for e in cfg.feedback if e["target"] == n] for n in names}
        self.areas = nn.ModuleDict()
        for i, spec in enumerate(cfg.areas):
            n = spec["name"]
            cin = cfg.in_channels if i == 0 else sum(chans[s] for s in self._ff[n])
            fb = [(e["source"], chans[e["source"]], e["rule"]) for e in cfg.feedback if e["target"] == n]
            self.areas[n] = Area(spec, cin, fb, cfg.dropout_at_test)
        self.readout_area = cfg.readout_area or names[-1]
        self.readout = READOUTS[cfg.readout](chans[self.readout_area], cfg.num_classes)
        self.halting_unit = HaltingUnit(chans[self.readout_area], cfg.halt_bias)

    @property
    def dropout_at_test(self) -> bool:
        return self.config.dropout_at_test

    @dropout_at_test.setter
    def dropout_at_test(self, value: bool) -> None:
        """Turn Monte Carlo dropout (dropout in eval mode) on or off for every area."""
        self.config.dropout_at_test = bool(value)
        for a in self.areas.values():
            a.dropout.at_test = bool(value)

    def spatial_sizes(self, height: int, width: int) -> dict:
        """Each area's output size for an image of ``height`` x ``width``."""
        sizes = {}
        for i, (n, a) in enumerate(self.areas.items()):
            sizes[n] = a.out_size(height, width) if i == 0 else a.out_size(*sizes[self._ff[n][-1]])
        return sizes

    def recurrent_parameters(self):
        """The areas' recurrent cells' parameters (the lateral recurrence; feedforward convolutions,
        feedback projections and the readout are not included)."""
        for area in self.areas.values():
            if area.cell is not None:
                yield from area.cell.parameters()

    def halting_policy(self, halting):
        """``halting`` as a policy object (a name, a policy or None: fixed)."""
        return get_policy(halting)

    def forward(self, image: torch.Tensor, steps: int | None = None, halting=None, *, state=None,
                return_steps: bool = False, shrink: bool | None = None, tbptt: int | None = None,
                on_step=None, t_on=_UNSET) -> RecurrentOutput:
        """Unroll for ``steps`` (default ``config.steps``) under ``halting`` (None/"fixed", "confidence",
        "stable", "convergence", "act", "ponder" or a policy); the keywords and defaults are
        :meth:`RecurrentModel.forward <convrnn.models.recurrent.RecurrentModel.forward>`'s.
        ``step_outputs`` is (steps, B, num_classes) with ``return_steps``; ``state`` is the dict
        ``{area: {"output": ..., "cell": ...}}`` (see the module docstring), and ``state=`` continues
        from a previous call's (the step count t of ``t_on`` starts again at 0 in the new call).
        ``t_on`` overrides the config's (None: the image at every step)."""
        cfg = self.config
        check_image(image, cfg.in_channels, "image")
        for n, (h, w) in self.spatial_sizes(*image.shape[-2:]).items():
            if h < 1 or w < 1:
                raise ValueError(f"image of size {tuple(image.shape[-2:])} is too small: area {n!r} would have "
                                 f"spatial size {(h, w)}")
        if state is not None:
            if not isinstance(state, dict) or list(state) != list(self.areas):
                raise ValueError(f"state: expected a dict keyed by the areas {', '.join(self.areas)} (a previous "
                                 f"call's .state), got {type(state).__name__}"
                                 + (f" with keys {', '.join(map(str, state))}" if isinstance(state, dict) else ""))
            check_finite_state(state, "state")
        t_on = cfg.t_on if t_on is _UNSET else t_on
        blank = torch.as_tensor(cfg.blank, dtype=image.dtype, device=image.device)
        blank = blank.view(1, -1, 1, 1) if blank.dim() else blank

        def step(x, prev, n):
            t = n - 1
            frame = x if t_on is None or t < t_on else blank.expand_as(x)
            new = {}
            for i, (name, area) in enumerate(self.areas.items()):
                if i == 0:
                    ff = [frame]
                elif prev is None:             # t = 0: absent inputs are zeros
                    ff = [torch.zeros_like(new[s]["output"]) for s in self._ff[name]]
                else:
                    ff = [prev[s]["output"] for s in self._ff[name]]
                fb = {} if prev is None else {s: prev[s]["output"] for s in self._fb[name]}
                o, c = area(ff, fb, None if prev is None else prev[name]["cell"])
                new[name] = {"output": o, "cell": c}
            return new[self.readout_area]["output"], new

        with finite_checks_off():            # the image was checked once above, not again at every step
            return run_recurrence(step, self.readout, self.halting_unit, image, cfg.steps if steps is None else steps,
                                  halting, state=state, return_steps=return_steps, shrink=shrink, tbptt=tbptt,
                                  on_step=on_step)


register_architecture(MultiAreaNetwork, MultiAreaConfig)      # checkpoints rebuild it (convrnn.checkpoint.load_model)


# ---- presets --------------------------------------------------------------------------------------

_PRESET_KNOBS = ("width", "cell", "cell_kwargs", "dropout", "feedback_rule", "norm")


def _build(areas: list, defaults: dict, kw: dict, recurrent_only_cell: bool = True) -> MultiAreaNetwork:
    """Scale ``areas`` by ``width``, apply the preset knobs, then any MultiAreaConfig field from ``kw``."""
    kw = dict(kw)
    check_keys("multi-area preset", kw, list(_PRESET_KNOBS) + [f.name for f in dataclasses.fields(MultiAreaConfig)])
    width = check_number("multi-area preset: width (a channel multiplier)", kw.pop("width", 1.0), 0, min_open=True)
    cell, cell_kwargs = kw.pop("cell", None), kw.pop("cell_kwargs", None)
    dropout, rule, norm = kw.pop("dropout", None), kw.pop("feedback_rule", None), kw.pop("norm", None)
    areas = [dict(a) for a in areas]
    for a in areas:
        a["channels"] = max(1, int(round(a["channels"] * width)))
        if a.get("cell") is not None or not recurrent_only_cell:
            if cell is not None:
                a["cell"], a["cell_kwargs"] = cell, {}
            if cell_kwargs is not None:
                a["cell_kwargs"] = dict(cell_kwargs)
        if dropout is not None:
            a["dropout"] = dropout
        if norm is not None:
            a["norm"] = norm
    cfg = {**defaults, "areas": areas, **kw}
    if rule is not None:
        _check_rule("multi-area preset: feedback_rule", rule)
        cfg["feedback"] = [{**_edge("feedback edge", e, ("source", "target", "rule")), "rule": rule}
                           for e in cfg.get("feedback", [])]
    return MultiAreaNetwork(MultiAreaConfig.from_dict(cfg))


def _greco_areas():
    return [dict(name="L1", channels=32, pool=2, cell="convgru", dropout=0.2),
            dict(name="L2", channels=64, pool=2, cell="convgru", dropout=0.2),   # post-integration area
            dict(name="L3", channels=128, pool=2, cell="convgru", dropout=0.2)]


_GRECO = dict(in_channels=3, num_classes=10, steps=10, t_on=10, blank=0.5)


@register_model("greco_ff")
def greco_ff(**kw):
    """Greco et al. (2025)-style ConvRNN *without* top-down feedback: three ConvGRU areas L1-L3
    (32/64/128 channels x ``width``, 3x3 convs, max-pool 2 each), dropout 0.2 in every area, 10 steps
    with the image on for all 10, average-pool + linear readout on L3. The paper's sizes are
    unpublished: these are our defaults. Knobs: width, cell, cell_kwargs, dropout, feedback_rule, norm (GroupNorm groups) and
    any MultiAreaConfig field."""
    return _build(_greco_areas(), dict(_GRECO), kw)


@register_model("greco_fb")
def greco_fb(**kw):
    """:func:`greco_ff` plus one top-down edge L3 -> L2 (L2 is the "post-integration" area), rule
    "add" by default (``feedback_rule="gain"`` or ``"concat"`` for the others). Its weights are a
    superset of greco_ff's (same names), so a greco_ff state dict loads with ``strict=False``."""
    return _build(_greco_areas(), dict(_GRECO, feedback=[dict(source="L3", target="L2", rule="add")]), kw)


_RGC = dict(cell="rgc", cell_kwargs=dict(kernel_size=3))
_NAYEBI = dict(in_channels=3, num_classes=1000, steps=16, t_on=12, blank=0.5)


@register_model("rgc_shallow")
def rgc_shallow(**kw):
    """Nayebi et al. (2018)-style shallow network: 6 conv layers, Reciprocal Gated Cells in the top
    three, 16 steps with the image on for the first 12 then mean gray. Our sizes: channels
    32/64/64/128/128/256 x ``width``; conv1 7x7 stride 2, max-pool 2 after conv2, conv4 and conv6
    (total /16: 32 px in -> 2x2 at the top)."""
    areas = [dict(name="conv1", channels=32, kernel=7, stride=2),
             dict(name="conv2", channels=64, pool=2),
             dict(name="conv3", channels=64),
             dict(name="conv4", channels=128, pool=2, **_RGC),
             dict(name="conv5", channels=128, **_RGC),
             dict(name="conv6", channels=256, pool=2, **_RGC)]
    return _build(areas, dict(_NAYEBI), kw)


@register_model("rgc_intermediate")
def rgc_intermediate(**kw):
    """A deeper Nayebi-style network: 8 conv layers, RGCs in the top five, long-range top-down
    feedback conv8 -> conv5, conv7 -> conv4, conv6 -> conv4 (rule "add", passed through the RGC's
    ``feedback=`` input), 16 steps, image on for 12. The searched architecture's exact edges are in
    the authors' TF checkpoints only: these edges and sizes are our choice. Channels
    32/64/64/128/128/256/256/256 x ``width``; /16 in total."""
    areas = [dict(name="conv1", channels=32, kernel=7, stride=2),
             dict(name="conv2", channels=64, pool=2),
             dict(name="conv3", channels=64),
             dict(name="conv4", channels=128, pool=2, **_RGC),
             dict(name="conv5", channels=128, **_RGC),
             dict(name="conv6", channels=256, pool=2, **_RGC),
             dict(name="conv7", channels=256, **_RGC),
             dict(name="conv8", channels=256, **_RGC)]
    fb = [dict(source="conv8", target="conv5", rule="add"),
          dict(source="conv7", target="conv4", rule="add"),
          dict(source="conv6", target="conv4", rule="add")]
    return _build(areas, dict(_NAYEBI, feedback=fb), kw)


@register_model("cornet_rt")
def cornet_rt(**kw):
    """CORnet-RT-like (Kubilius et al. 2019): areas V1, V2, V4, IT unrolled biologically for
    ``steps=5`` (CORnet's times=5) with the image at every step; each area is a strided conv (V1 7x7
    stride 4, then 3x3 stride 2) and an Elman ReLU cell with GroupNorm(1) standing in for CORnet's
    additive state + conv + BatchNorm; average-pool + linear decoder on IT. Channels 32/64/128/256 x
    ``width`` (half of CORnet's), 1000 classes."""
    cell = dict(cell="elman", cell_kwargs=dict(activation="relu", norm_groups=1))
    areas = [dict(name="V1", channels=32, kernel=7, stride=4, **cell),
             dict(name="V2", channels=64, stride=2, **cell),
             dict(name="V4", channels=128, stride=2, **cell),
             dict(name="IT", channels=256, stride=2, **cell)]
    return _build(areas, dict(in_channels=3, num_classes=1000, steps=5, t_on=None, blank=0.5), kw)
