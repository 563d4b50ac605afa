"""Small building blocks shared by the models: readout heads and the halting unit."""
from __future__ import annotations

import torch
from torch import nn

from .cells.base import conv
from .runtime import fp32


class DenseHead(nn.Sequential):
    """Per-pixel readout as in DeepThinking: 3x3 convs ``width -> 32 -> 8 -> out`` with ReLUs."""

    def __init__(self, width: int, out_channels: int):
        super().__init__(conv(width, 32, 3, bias=False), nn.ReLU(), conv(32, 8, 3, bias=False), nn.ReLU(),
                         conv(8, out_channels, 3, bias=False))


class MaxPoolHead(nn.Module):
    """The adaptive-recurrence authors' PathFinder readout: 1x1 conv to ``out`` maps, global max-pool,
    linear."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.conv = conv(width, out_channels, 1)
        self.fc = nn.Linear(out_channels, out_channels)

    def forward(self, h):
        return self.fc(self.conv(h).amax(dim=(2, 3)))


class AvgPoolHead(nn.Module):
    """Classification readout: global average pool then linear."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.fc = nn.Linear(width, out_channels)

    def forward(self, h):
        return self.fc(h.mean(dim=(2, 3)))


HEADS = {"dense": DenseHead, "maxpool": MaxPoolHead, "avgpool": AvgPoolHead}


class DynamicsHaltingHead(nn.Module):
    """The learned part of :class:`convrnn.halting.AnswerDynamics`: standardised answer-dynamics
    features (6) -> 16 -> ReLU -> 1 halting logit. ``mean``/``std`` are buffers fitted with the head
    (second stage, :func:`convrnn.halting_training.fit_dynamics_halting`). Runs in float32."""

    def __init__(self, features: int = 6, hidden: int = 16, bias: float = -3.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.mlp[2].bias, bias)

    @fp32
    def forward(self, f):
        return self.mlp((f - self.mean) / self.std).squeeze(-1)


class HaltingUnit(nn.Module):
    """``logit = w · [mean(h), max(h)] + b``: one halting logit per sample (Graves 2016, pooled over
    space). The bias starts at ``bias`` (around -2 keeps early training from halting at step 1). It runs
    in float32 under autocast: the ACT and PonderNet sums it feeds must stay exact."""

    def __init__(self, width: int, bias: float = -2.0):
        super().__init__()
        self.fc = nn.Linear(2 * width, 1)
        nn.init.zeros_(self.fc.weight)
        nn.init.constant_(self.fc.bias, bias)

    @fp32
    def forward(self, h):
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)
        return self.fc(pooled).squeeze(1)
