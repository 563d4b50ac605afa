"""Elman convolutional RNN (the "vanilla" ConvRNN).

    h' = f( norm( W_x * x + W_h * h + b ) ),   f = tanh or ReLU

``W_x`` and ``W_h`` are one convolution over ``[x, h]``; ``W_x * x + b`` is the hoistable input drive.
Source: Elman (1990), convolutional form as used by Nayebi et al. (2018) and Spoerer et al. (2017).

Two optional knobs (defaults give the cell above exactly):

    h' = τ h + (1 - τ) f( norm( W_x * x [+ W_h * h] + b ) )

``decay=τ`` in [0, 1) keeps a fixed fraction of the old state (a leaky integrator; 0: none) and
``lateral=False`` drops ``W_h * h``. ``activation="relu", decay=τ, lateral=False`` is the "time
decay" cell of Nayebi et al. (2018): each unit only decays towards its feedforward drive, with no
recurrent weights (here with a fixed, not learned, τ).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import check_bool, check_choice, check_number
from ..registry import register_cell
from .base import ConvRNNCell, conv, conv_slice

_ACTS = {"tanh": torch.tanh, "relu": torch.relu}


@register_cell("elman")
class ElmanCell(ConvRNNCell):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 activation: str = "tanh", norm_groups: int = 0, decay: float = 0.0, lateral: bool = True):
        super().__init__(in_channels, hidden_channels, kernel_size)
        check_choice("ElmanCell: activation", activation, sorted(_ACTS))
        check_number("ElmanCell: decay", decay, 0, 1, max_open=True)
        check_bool("ElmanCell: lateral", lateral)
        self.activation, self.decay, self.lateral = activation, float(decay), lateral
        self.conv = conv(in_channels + (hidden_channels if lateral else 0), hidden_channels, kernel_size)
        self.norm = nn.GroupNorm(norm_groups, hidden_channels) if norm_groups else nn.Identity()

    def input_drive(self, x):
        """``W_x * x + b``."""
        return conv_slice(self.conv, x, 0, self.in_channels, bias=True)

    def forward(self, x, state=None, drive=None):
        h = self._prepare(x, state)
        if drive is None:
            z = self.conv(torch.cat([x, h], 1) if self.lateral else x)
        else:
            z = drive + conv_slice(self.conv, h, self.in_channels) if self.lateral else drive
        new = _ACTS[self.activation](self.norm(z))
        if self.decay:
            new = self.decay * h + (1 - self.decay) * new
        return new, new
