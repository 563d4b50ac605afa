"""Reciprocal Gated Cell (Nayebi et al. 2018, "Task-driven convolutional recurrent models of the
visual system"; shallow-search settings).

Two states, ``c`` (memory) and ``h`` (output):

    c' = ELU( (1 - σ(W_cc * c)) ⊙ c + (1 - σ(W_hc * h)) ⊙ (W_xc * x) )
    h' = ELU( (1 - σ(W_hh * h)) ⊙ h + (1 - σ(W_ch * c + W_rh * r)) ⊙ (x + fb) )

Each state's own convolution sets its decay; the *other* state's convolution gates its input
("reciprocal" gating). ``x`` enters ``h`` without a convolution: the *bypass* (when ``in_channels``
differs from ``hidden_channels`` a 1x1 projection makes the sizes agree). ``r`` is the layer's raw
input before its feedforward convolution (optional, ``raw_channels > 0``), ``fb`` summed top-down
feedback already resized to this layer (optional). Convolutions reading the same tensor are fused:
one over ``c`` for ``W_cc, W_ch`` and one over ``h`` for ``W_hc, W_hh``. State: ``(h, c)``. The input
drive is ``(W_xc * x, bypass(x))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_cell
from .base import ConvRNNCell, conv


@register_cell("rgc")
class ReciprocalGatedCell(ConvRNNCell):
    num_states = 2
    channels_last_friendly = False    # gates on channel slices: channels_last is slower on the CPU

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, raw_channels: int = 0):
        super().__init__(in_channels, hidden_channels, kernel_size)
        hid = hidden_channels
        self.from_c = conv(hid, 2 * hid, kernel_size)      # [W_cc, W_ch]
        self.from_h = conv(hid, 2 * hid, kernel_size)      # [W_hc, W_hh]
        self.from_x = conv(in_channels, hid, kernel_size)  # W_xc
        self.bypass = nn.Identity() if in_channels == hid else conv(in_channels, hid, 1, bias=False)
        self.raw_channels = raw_channels
        self.from_raw = conv(raw_channels, hid, kernel_size) if raw_channels else None  # W_rh

    def input_drive(self, x):
        """``(W_xc * x, bypass(x))``."""
        return self.from_x(x), self.bypass(x)

    def forward(self, x, state=None, feedback=None, raw=None, drive=None):
        h, c = self._prepare(x, state)
        xc, bypassed = self.input_drive(x) if drive is None else drive
        cc, ch = self.from_c(c).chunk(2, 1)
        hc, hh = self.from_h(h).chunk(2, 1)
        if raw is not None:
            if self.from_raw is None:
                raise ValueError("ReciprocalGatedCell: got raw= input but was built with raw_channels=0")
            ch = ch + self.from_raw(raw)
        if feedback is not None:
            if feedback.shape != bypassed.shape:
                raise ValueError(f"ReciprocalGatedCell: feedback must have shape {tuple(bypassed.shape)} (resized and "
                                 f"projected to this layer), got {tuple(feedback.shape)}")
            bypassed = bypassed + feedback
        c_new = F.elu((1 - torch.sigmoid(cc)) * c + (1 - torch.sigmoid(hc)) * xc)
        h_new = F.elu((1 - torch.sigmoid(hh)) * h + (1 - torch.sigmoid(ch)) * bypassed)
        return h_new, (h_new, c_new)
