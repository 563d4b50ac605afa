"""The weight-tied recurrent model: encoder -> one cell iterated -> readout.

    e   = encoder(image)
    x_t = e  (every step with ``recall``; otherwise e at t = 1 and 0 after)
    h_t, s_t = cell(x_t, s_{t-1})
    y_t = readout(h_t),   q_t = σ(halting_unit(h_t))

The input-only part of the cell's step (``cell.input_drive(e)``, e.g. the recall convolution's
x-half) is computed once per forward, not once per step. The number of steps and the halting
policy are arguments of ``forward`` (see
:mod:`convrnn.halting`), so a model trained with 20 steps runs 200 at test time unchanged.
With the residual cell, recall and the dense head this is DeepThinking's DT-net with recall
(Bansal et al. 2022), except that recall re-injects the encoder's features of the image.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import (DictConfig, check_bool, check_finite_state, check_image, check_keys, check_positive_int,
                      finite_checks_off, unknown_name)
from ..halting import AnswerDynamics, RecurrentOutput, get_policy, run_recurrence
from ..layers import HEADS, DynamicsHaltingHead, HaltingUnit
from ..registry import create_cell, get_cell_class, register_architecture


@dataclass
class RecurrentConfig(DictConfig):
    _what = "model config"

    in_channels: int = 3
    width: int = 32
    cell: str = "residual"
    cell_kwargs: dict = field(default_factory=dict)
    head: str = "dense"            # dense | maxpool | avgpool
    out_channels: int = 2          # classes (per pixel for the dense head)
    recall: bool = True
    steps: int = 20                # default number of steps when forward() is not told
    halt_bias: float = -2.0
    dynamics_halting: bool = False   # has a second-stage learned halting head (halting="learned")
    default_halting: str = "fixed"   # the policy evaluation uses when not told (forward's default stays fixed)

    def __post_init__(self):
        for k in ("in_channels", "width", "out_channels", "steps"):
            check_positive_int(f"model config: {k}", getattr(self, k))
        if not isinstance(self.cell_kwargs, dict):
            raise ValueError(f"model config: cell_kwargs must be a mapping, got {self.cell_kwargs!r}")
        check_bool("model config: dynamics_halting", self.dynamics_halting)
        if self.default_halting == "learned" and not self.dynamics_halting:
            raise ValueError("model config: default_halting 'learned' needs dynamics_halting: true")


class RecurrentModel(nn.Module):
    def __init__(self, config: RecurrentConfig | None = None, **overrides):
        super().__init__()
        cfg = config or RecurrentConfig()
        if overrides:
            check_keys("model config", overrides, [f.name for f in dataclasses.fields(RecurrentConfig)])
            cfg = dataclasses.replace(cfg, **overrides)
        if cfg.head not in HEADS:
            raise unknown_name("head", cfg.head, HEADS)
        get_cell_class(cfg.cell)
        self.config = cfg
        self.encoder = nn.Sequential(nn.Conv2d(cfg.in_channels, cfg.width, 3, padding=1, bias=False), nn.ReLU())
        self.cell = create_cell(cfg.cell, cfg.width, cfg.width, **cfg.cell_kwargs)
        self.readout = HEADS[cfg.head](cfg.width, cfg.out_channels)
        self.halting_unit = HaltingUnit(cfg.width, cfg.halt_bias)
        if cfg.dynamics_halting:
            self.dynamics_head = DynamicsHaltingHead()

    @property
    def channels_last_friendly(self) -> bool:
        """The cell's answer (see ``runtime.channels_last_wins``)."""
        return getattr(self.cell, "channels_last_friendly", True)

    def halting_policy(self, halting):
        """``halting`` as a policy object; ``"learned"`` is this model's fitted head
        (:class:`~convrnn.halting.AnswerDynamics`)."""
        if isinstance(halting, str) and halting == "learned":
            if not self.config.dynamics_halting:
                raise ValueError("halting='learned' needs a model with a learned halting head: fit one with "
                                 "`convrnn fit-halting RUN` (convrnn.halting_training)")
            return AnswerDynamics(self.dynamics_head)
        return get_policy(halting)

    def recurrent_parameters(self):
        """The weight-tied recurrent block's parameters: the cell's (training may give them their own
        learning rate, ``recurrent_lr_scale``)."""
        return self.cell.parameters()

    def _hoists(self) -> bool:
        """Does the cell take a precomputed ``drive=`` (every built-in cell; maybe not a user's)?"""
        return "drive" in inspect.signature(self.cell.forward).parameters

    def forward(self, image: torch.Tensor, steps: int | None = None, halting=None, *, state=None,
                return_steps: bool = False, shrink: bool | None = None, tbptt: int | None = None,
                on_step=None) -> RecurrentOutput:
        """Run up to ``steps`` iterations (default ``config.steps``) under ``halting`` ("fixed", "act",
        "ponder", "confidence", "convergence", "stable" or a policy object). ``state`` continues from a
        previous call's ``.state`` (without recall the image is not shown again). The keywords and their
        defaults are every recurrent family's (:class:`~convrnn.models.multiarea.MultiAreaNetwork` too):
        ``return_steps`` keeps every step's output in ``step_outputs``; ``shrink``, ``tbptt`` and
        ``on_step`` are :func:`~convrnn.halting.run_recurrence`'s."""
        check_image(image, self.config.in_channels, "image")
        halting = self.halting_policy(halting)
        e = self.encoder(image)
        hoist = self._hoists()
        first = 1 if state is None else 0     # a continued run has seen its input already
        blank = {}                            # without recall: the zero input (and its drive) after step 1

        def step(inp, s, n):
            x, d = inp
            if not self.config.recall and n != first:
                if blank.get("x") is None or blank["x"].shape != x.shape:
                    blank["x"] = torch.zeros_like(x)
                    blank["d"] = self.cell.input_drive(blank["x"]) if hoist else None
                x, d = blank["x"], blank["d"]
            return self.cell(x, s, drive=d) if hoist else self.cell(x, s)

        check_finite_state(state, "state")
        inp = (e, self.cell.input_drive(e) if hoist else None)
        with finite_checks_off():            # checked once above, not again by the cell at every step
            return run_recurrence(step, self.readout, self.halting_unit, inp,
                                  self.config.steps if steps is None else steps, halting, state=state,
                                  return_steps=return_steps, shrink=shrink, tbptt=tbptt, on_step=on_step)


register_architecture(RecurrentModel, RecurrentConfig)      # checkpoints rebuild it (convrnn.checkpoint.load_model)
