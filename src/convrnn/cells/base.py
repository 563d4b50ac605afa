"""The one interface every recurrent cell follows.

``out, state = cell(x, state=None)``: ``x`` is a (B, C_in, H, W) feature map, ``state`` is whatever the
cell returned last time (a tensor or a tuple of tensors, batch first) or ``None`` for a fresh
zero state sized from ``x``. ``out`` is the (B, hidden_channels, H, W) map passed on to the next
layer. Cells keep H and W. Any extra keyword input a cell understands (``feedback=`` for top-down
input) is optional and defaults to "absent".

Hoisting. The part of a step that sees only the input — for a fused convolution over ``[x, h]``,
``W * [x; h] = W_x * x + W_h * h`` — is the same at every step when the input is re-injected
(recall) and can be batched over time for a sequence. ``drive = cell.input_drive(x)`` computes it
once; ``cell(x, state, drive=drive)`` then runs only the state-dependent part. Without ``drive``
the cell runs its un-hoisted form (one convolution over the concatenation ``[x, h]``), which is
what a step with a new input should do: on the CPU one convolution over ``[x, h]`` costs about the
same as the two halves, and adding the halves is an extra pass over the gates. The weights stay
one tensor per fused convolution (state-dict keys do not change); :func:`conv_slice` applies a
slice of its input channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_finite_state, check_image, check_positive_int

#: a cell's state; a model's state may nest them in tuples, lists and dicts (see :func:`map_state`)
State = torch.Tensor | tuple[torch.Tensor, ...]
#: what :meth:`ConvRNNCell.input_drive` returns: a tensor or a tuple of tensors, batch first
Drive = torch.Tensor | tuple[torch.Tensor, ...]


class ConvRNNCell(nn.Module):
    """Base class: stores sizes, validates input and builds zero states."""

    #: number of tensors in the state (1 -> a plain tensor, >1 -> a tuple)
    num_states: int = 1
    #: does channels_last speed this cell up on the CPU? (see ``runtime.channels_last_wins``)
    channels_last_friendly: bool = True

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                        ("kernel_size", kernel_size)):
            check_positive_int(f"{type(self).__name__}: {name}", v)
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
        check_image(x, self.in_channels, f"{type(self).__name__} input")
        check_finite_state(state, f"{type(self).__name__} state")
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

    def input_drive(self, x: torch.Tensor) -> Drive:
        """The input-only part of a step (see the module docstring); cells override it."""
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"


def conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 'same' convolution."""
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias, groups=groups)


def conv_slice(layer: nn.Conv2d, t: torch.Tensor, start: int, stop: int | None = None,
               bias: bool = False) -> torch.Tensor:
    """``layer`` applied to ``t`` as if ``t`` filled its input channels ``start:stop`` and the others
    were zero: with ``W = [W_a, W_b]``, ``layer([a, b]) = conv_slice(layer, a, 0, ca, bias=True) +
    conv_slice(layer, b, ca)``."""
    return F.conv2d(t, layer.weight[:, start:stop], layer.bias if bias else None, layer.stride, layer.padding,
                    layer.dilation, layer.groups)


def zip_state(fn, a, b):
    """``fn(x, y)`` on the matching tensors of two states of the same structure: a tensor or nested
    tuples, lists and dicts of tensors (``None`` leaves stay ``None``)."""
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    if isinstance(a, dict):
        return {k: zip_state(fn, a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(zip_state(fn, x, y) for x, y in zip(a, b))
    if a is None:
        return None
    raise TypeError(f"expected a tensor or tuples/lists/dicts of tensors in a state, got {type(a).__name__}")


def map_state(state, fn):
    """Apply ``fn`` to every tensor of a state, a pytree of the same shape back: a tensor or nested
    tuples, lists and dicts of tensors, ``None`` leaves kept (a cell's tuple, a multi-area network's dict
    of areas). Used to shrink, detach or index states and drives."""
    return zip_state(lambda s, _: fn(s), state, state)


def first_tensor(tree) -> torch.Tensor:
    """The first tensor of a state or drive (for its batch size and device)."""
    if isinstance(tree, torch.Tensor):
        return tree
    for v in (tree.values() if isinstance(tree, dict) else tree):
        if v is not None:
            return first_tensor(v)
    raise ValueError("expected at least one tensor")
