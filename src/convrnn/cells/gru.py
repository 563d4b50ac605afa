"""Convolutional GRU (Ballas et al. 2016; Shi et al. 2015 style convolutions).

    [r, u] = σ( W_g * [x, h] + b_g )            (one fused convolution for both gates)
    ĥ      = tanh( W_c * [x, r ⊙ h] + b_c )
    h'     = u ⊙ h + (1 - u) ⊙ ĥ

The input drive ``[W_g,x * x + b_g, W_c,x * x + b_c]`` is one convolution (both x-parts fused), computed
once per forward when the input repeats (recall) or once for all steps of a sequence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import register_cell
from .base import ConvRNNCell, conv, conv_slice


@register_cell("convgru")
class ConvGRUCell(ConvRNNCell):
    channels_last_friendly = False    # gates on channel slices: channels_last is slower on the CPU
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__(in_channels, hidden_channels, kernel_size)
        self.gates = conv(in_channels + hidden_channels, 2 * hidden_channels, kernel_size)
        self.candidate = conv(in_channels + hidden_channels, hidden_channels, kernel_size)

    def input_drive(self, x):
        """``[W_g,x * x + b_g, W_c,x * x + b_c]`` as one convolution (3 x hidden channels)."""
        cin = self.in_channels
        w = torch.cat([self.gates.weight[:, :cin], self.candidate.weight[:, :cin]])
        b = torch.cat([self.gates.bias, self.candidate.bias])
        return F.conv2d(x, w, b, padding=self.kernel_size // 2)

    def forward(self, x, state=None, drive=None):
        h = self._prepare(x, state)
        if drive is None:
            r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
            c = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        else:
            gx, cx = drive.split([2 * self.hidden_channels, self.hidden_channels], 1)
            r, u = torch.sigmoid(gx + conv_slice(self.gates, h, self.in_channels)).chunk(2, 1)
            c = torch.tanh(cx + conv_slice(self.candidate, r * h, self.in_channels))
        h = u * h + (1 - u) * c
        return h, h
