"""Residual recurrent block of DeepThinking's DT-net (Schwarzschild et al. 2021; Bansal et al. 2022).

    s' = B( B( conv3x3([s, x]) ) ),     B(z) = ReLU( z + conv( ReLU( conv(z) ) ) )

No biases and no normalisation, as in DT-net. ``x`` is the input re-injected at every step
("recall"); ``num_blocks`` sets how many ``B`` follow the projection (2 in DT-net). The recall
convolution's x-part ``W_x * x`` is the input drive, computed once per forward.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_cell
from .base import ConvRNNCell, conv, conv_slice


class BasicBlock(nn.Module):
    """``B(z) = ReLU(z + conv(ReLU(conv(z))))`` without biases."""

    def __init__(self, width: int, kernel_size: int = 3):
        super().__init__()
        self.conv1 = conv(width, width, kernel_size, bias=False)
        self.conv2 = conv(width, width, kernel_size, bias=False)

    def forward(self, z):
        return torch.relu(z + self.conv2(torch.relu(self.conv1(z))))


@register_cell("residual")
class ResidualRecurrentCell(ConvRNNCell):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, num_blocks: int = 2):
        super().__init__(in_channels, hidden_channels, kernel_size)
        self.project = conv(in_channels + hidden_channels, hidden_channels, kernel_size, bias=False)
        self.blocks = nn.Sequential(*[BasicBlock(hidden_channels, kernel_size) for _ in range(num_blocks)])

    def input_drive(self, x):
        """``W_x * x``: the recall convolution's part that sees the input (its channels follow the state's)."""
        return conv_slice(self.project, x, self.hidden_channels)

    def forward(self, x, state=None, drive=None):
        s = self._prepare(x, state)
        if drive is None:
            s = self.blocks(self.project(torch.cat([s, x], 1)))
        else:
            s = self.blocks(conv_slice(self.project, s, 0, self.hidden_channels) + drive)
        return s, s
