"""LocRNN (Veerabadran et al., NeurIPS 2023), a discretisation of Li's (1998) V1 circuit with an
excitatory (E) and an inhibitory (I) population:

    gI = σ( UI * [x, E, I] )
    I' = (1 - gI) ⊙ I + gI ⊙ ReLU( GN( W_xi * x + W_ei * E ) )
    gE = σ( UE * [x, E, I'] )
    E' = (1 - gE) ⊙ E + gE ⊙ ReLU( GN( W_xe * x + W_ee * E - W_ie * I' ) )

Gates ``UI, UE`` and input maps ``W_xi, W_xe`` are 1x1 (the four x-terms are one fused 1x1
convolution); horizontal kernels are ``W_ee`` (excitatory, 7x7 by default) and ``W_ei, W_ie``
(inhibitory, 5x5); GN is GroupNorm with one group. Only E is passed on. State: ``(E, I)``. The input drive is the fused 1x1 convolution of ``x``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import check_int
from ..registry import register_cell
from .base import ConvRNNCell, conv


@register_cell("locrnn")
class LocRNNCell(ConvRNNCell):
    num_states = 2

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 7, inhibitory_kernel_size: int = 5):
        super().__init__(in_channels, hidden_channels, kernel_size)
        hid, ki = hidden_channels, inhibitory_kernel_size
        check_int("LocRNNCell: inhibitory_kernel_size", ki, 1, odd=True)
        self.from_x = conv(in_channels, 4 * hid, 1)          # [UI_x, UE_x, W_xi, W_xe]
        self.gate_i = conv(2 * hid, hid, 1, bias=False)      # UI on [E, I]
        self.gate_e = conv(2 * hid, hid, 1, bias=False)      # UE on [E, I']
        self.w_ei = conv(hid, hid, ki, bias=False)
        self.w_ee = conv(hid, hid, kernel_size, bias=False)
        self.w_ie = conv(hid, hid, ki, bias=False)
        self.norm_i = nn.GroupNorm(1, hid)
        self.norm_e = nn.GroupNorm(1, hid)

    def input_drive(self, x):
        """``[UI_x, UE_x, W_xi, W_xe] * x`` (one 1x1 convolution)."""
        return self.from_x(x)

    def forward(self, x, state=None, drive=None):
        E, I = self._prepare(x, state)
        ui, ue, xi, xe = (self.input_drive(x) if drive is None else drive).chunk(4, 1)
        gi = torch.sigmoid(ui + self.gate_i(torch.cat([E, I], 1)))
        I = (1 - gi) * I + gi * torch.relu(self.norm_i(xi + self.w_ei(E)))
        ge = torch.sigmoid(ue + self.gate_e(torch.cat([E, I], 1)))
        E = (1 - ge) * E + ge * torch.relu(self.norm_e(xe + self.w_ee(E) - self.w_ie(I)))
        return E, (E, I)
