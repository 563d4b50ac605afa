"""The one interface every recurrent cell follows.

``out, state = cell(x, state=None)``: ``x`` is a (B, C_in, H, W) feature map, ``state`` is whatever the
cell returned last time (a tensor or a tuple of tensors, batch first) or ``None`` for a fresh
zero state sized from ``x``. ``out`` is the (B, hidden_channels, H, W) map passed on to the next
layer. Cells keep H and W. Any extra keyword input a cell understands (``feedback=`` for top-down
input) is optional and defaults to "absent".
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import check_image

State = torch.Tensor | tuple[torch.Tensor, ...]


class ConvRNNCell(nn.Module):
    """Base class: stores sizes, validates input and builds zero states."""

    #: number of tensors in the state (1 -> a plain tensor, >1 -> a tuple)
    num_states: int = 1

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                        ("kernel_size", kernel_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {v!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__}: kernel_size must be odd to keep H and W, got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size

    def init_state(self, x: torch.Tensor) -> State:
        """A zero state matching ``x`` in batch, spatial size, dtype, device and memory format."""
        B, _, H, W = x.shape
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
            else torch.contiguous_format
        zeros = [torch.zeros(B, self.hidden_channels, H, W, dtype=x.dtype, device=x.device)
                 .contiguous(memory_format=fmt) for _ in range(self.num_states)]
        return zeros[0] if self.num_states == 1 else tuple(zeros)

    def _prepare(self, x: torch.Tensor, state: State | None) -> State:
        check_image(x, self.in_channels, f"{type(self).__name__} input", finite=state is None)
        if state is None:
            return self.init_state(x)
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        if len(parts) != self.num_states:
            raise ValueError(f"{type(self).__name__}: expected a state of {self.num_states} tensor(s), got {len(parts)}")
        for s in parts:
            if s.dim() != 4 or s.shape[0] != x.shape[0] or s.shape[-2:] != x.shape[-2:] \
                    or s.shape[1] != self.hidden_channels:
                raise ValueError(f"{type(self).__name__}: state shape {tuple(s.shape)} does not match input "
                                 f"{tuple(x.shape)} in batch or spatial size, or has not {self.hidden_channels} "
                                 "channels")
            if s.dtype != x.dtype:
                raise TypeError(f"{type(self).__name__}: state dtype {s.dtype} differs from input dtype {x.dtype}")
        return state

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"


def conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 'same' convolution."""
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias, groups=groups)


def map_state(state: State, fn) -> State:
    """Apply ``fn`` to every tensor of a state (used to shrink or detach states)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(fn(s) for s in state)
