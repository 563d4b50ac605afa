"""Convolutional GRU (Ballas et al. 2016; Shi et al. 2015 style convolutions).

    [r, u] = σ( W_g * [x, h] + b_g )            (one fused convolution for both gates)
    ĥ      = tanh( W_c * [x, r ⊙ h] + b_c )
    h'     = u ⊙ h + (1 - u) ⊙ ĥ
"""
from __future__ import annotations

import torch

from ..registry import register_cell
from .base import ConvRNNCell, conv


@register_cell("convgru")
class ConvGRUCell(ConvRNNCell):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__(in_channels, hidden_channels, kernel_size)
        self.gates = conv(in_channels + hidden_channels, 2 * hidden_channels, kernel_size)
        self.candidate = conv(in_channels + hidden_channels, hidden_channels, kernel_size)

    def forward(self, x, state=None):
        h = self._prepare(x, state)
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        h = u * h + (1 - u) * c
        return h, h
