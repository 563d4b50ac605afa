"""Horizontal gated recurrent unit, hGRU (Linsley et al., NeurIPS 2018).

One horizontal kernel ``W`` (15x15 in the paper; symmetric across channels, W[i, j] = W[j, i]) is
shared by an inhibition and an excitation stage; the gates ``U1, U2`` are 1x1:

    g1  = σ(U1 * h2 + b1)
    h1  = tanh( x - (α ⊙ h2 + μ) ⊙ (W * (g1 ⊙ h2)) )                 (inhibition)
    g2  = σ(U2 * h1 + b2)
    c2  = W * h1
    ĥ2  = tanh( κ ⊙ h1 + β ⊙ c2 + ω ⊙ (h1 ⊙ c2) )                    (excitation)
    h2' = η_t ⊙ ( (1 - g2) ⊙ h2 + g2 ⊙ ĥ2 )

α, μ, κ, β, ω are per channel, η_t one scalar per step (steps past ``timesteps`` reuse the last
one). Gate biases get the "chronos" initialisation ``b1 = log(U(1, T-1))``, ``b2 = -b1`` (applied
in place — a popular port forgets). ``x`` must have ``hidden_channels`` channels; otherwise a 1x1
projection is inserted (the input drive). State: ``(h2, t)`` where ``t`` (B,) counts the steps taken.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_finite_state, check_image, check_int
from ..registry import register_cell
from .base import ConvRNNCell, conv


@register_cell("hgru")
class HGRUCell(ConvRNNCell):
    num_states = 2
    channels_last_friendly = False    # gates on channel slices: channels_last is slower on the CPU

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 15, timesteps: int = 8):
        super().__init__(in_channels, hidden_channels, kernel_size)
        check_int("HGRUCell: timesteps (T of the chronos init)", timesteps, 2)
        hid = hidden_channels
        self.timesteps = timesteps
        self.proj = nn.Identity() if in_channels == hid else conv(in_channels, hid, 1, bias=False)
        self.weight = nn.Parameter(torch.empty(hid, hid, kernel_size, kernel_size))
        self.u1 = conv(hid, hid, 1)
        self.u2 = conv(hid, hid, 1)
        self.alpha = nn.Parameter(torch.full((1, hid, 1, 1), 0.1))
        self.mu = nn.Parameter(torch.ones(1, hid, 1, 1))
        self.kappa = nn.Parameter(torch.full((1, hid, 1, 1), 0.5))
        self.beta = nn.Parameter(torch.ones(1, hid, 1, 1))
        self.omega = nn.Parameter(torch.full((1, hid, 1, 1), 0.5))
        self.eta = nn.Parameter(torch.ones(timesteps))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.xavier_normal_(self.weight, gain=0.5)
        nn.init.orthogonal_(self.u1.weight)
        nn.init.orthogonal_(self.u2.weight)
        with torch.no_grad():
            self.u1.bias.uniform_(1.0, self.timesteps - 1).log_()   # chronos, in place
            self.u2.bias.copy_(-self.u1.bias)

    def horizontal(self) -> torch.Tensor:
        """The channel-symmetric horizontal kernel."""
        return 0.5 * (self.weight + self.weight.transpose(0, 1))

    def init_state(self, x):
        B, _, H, W = x.shape
        h = torch.zeros(B, self.hidden_channels, H, W, dtype=x.dtype, device=x.device)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            h = h.contiguous(memory_format=torch.channels_last)
        return h, torch.zeros(B, dtype=torch.long, device=x.device)

    def _prepare(self, x, state):
        check_image(x, self.in_channels, "HGRUCell input")
        if state is None:
            return self.init_state(x)
        check_finite_state(state, "HGRUCell state")
        h2, t = state
        if h2.shape[0] != x.shape[0] or h2.shape[-2:] != x.shape[-2:] or t.shape != (x.shape[0],):
            raise ValueError(f"HGRUCell: state shapes {tuple(h2.shape)}, {tuple(t.shape)} do not match input "
                             f"{tuple(x.shape)}")
        return h2, t

    def input_drive(self, x):
        """The 1x1 projection of ``x`` (identity when the channels agree)."""
        return self.proj(x)

    def forward(self, x, state=None, drive=None):
        h2, t = self._prepare(x, state)
        x = self.proj(x) if drive is None else drive
        W = self.horizontal().to(x.dtype)
        pad = self.kernel_size // 2
        g1 = torch.sigmoid(self.u1(h2))
        h1 = torch.tanh(x - (self.alpha * h2 + self.mu) * F.conv2d(g1 * h2, W, padding=pad))
        g2 = torch.sigmoid(self.u2(h1))
        c2 = F.conv2d(h1, W, padding=pad)
        h2_hat = torch.tanh(self.kappa * h1 + self.beta * c2 + self.omega * (h1 * c2))
        eta = self.eta[t.clamp(max=self.timesteps - 1)].view(-1, 1, 1, 1).to(x.dtype)
        h2 = eta * ((1 - g2) * h2 + g2 * h2_hat)
        return h2, (h2, t + 1)
