"""Elman convolutional RNN (the "vanilla" ConvRNN).

    h' = f( norm( W_x * x + W_h * h + b ) ),   f = tanh or ReLU

``W_x`` and ``W_h`` are applied as one fused convolution over ``[x, h]``.
Source: Elman (1990), convolutional form as used by Nayebi et al. (2018) and Spoerer et al. (2017).
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_cell
from .base import ConvRNNCell, conv

_ACTS = {"tanh": torch.tanh, "relu": torch.relu}


@register_cell("elman")
class ElmanCell(ConvRNNCell):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 activation: str = "tanh", norm_groups: int = 0):
        super().__init__(in_channels, hidden_channels, kernel_size)
        if activation not in _ACTS:
            raise ValueError(f"ElmanCell: activation must be one of {sorted(_ACTS)}, got {activation!r}")
        self.activation = activation
        self.conv = conv(in_channels + hidden_channels, hidden_channels, kernel_size)
        self.norm = nn.GroupNorm(norm_groups, hidden_channels) if norm_groups else nn.Identity()

    def forward(self, x, state=None):
        h = self._prepare(x, state)
        h = _ACTS[self.activation](self.norm(self.conv(torch.cat([x, h], 1))))
        return h, h
