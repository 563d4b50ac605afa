"""Convolutional LSTM without peepholes (Shi et al. 2015).

    [i, f, o, g] = W * [x, h] + b              (one fused convolution for all four gates)
    c' = σ(f + 1) ⊙ c + σ(i) ⊙ tanh(g)         (+1: forget-gate bias towards remembering)
    h' = σ(o) ⊙ tanh(c')

State: ``(h, c)``.
"""
from __future__ import annotations

import torch

from ..registry import register_cell
from .base import ConvRNNCell, conv


@register_cell("convlstm")
class ConvLSTMCell(ConvRNNCell):
    num_states = 2

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__(in_channels, hidden_channels, kernel_size)
        self.gates = conv(in_channels + hidden_channels, 4 * hidden_channels, kernel_size)

    def forward(self, x, state=None):
        h, c = self._prepare(x, state)
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f + 1) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)
