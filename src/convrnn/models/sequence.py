"""Any registered cell run over a sequence of frames, as ``torch.nn.LSTM(batch_first=True)`` runs
its cell.

    outputs, states = ConvRNN("convlstm", in_channels=3, hidden_channels=32, num_layers=2)(video)

``video`` is (B, T, C, H, W); ``outputs`` (B, T, hidden, H, W) are the last layer's outputs at every
frame; ``states`` is a list with each layer's last state (pass it back as ``state=`` to continue the
sequence). Layer ``l > 0`` reads layer ``l - 1``'s outputs. Layers run one after the other over the
whole sequence. On a GPU each layer's input-only computation (``cell.input_drive``, e.g.
``W_x * x + b`` of a ConvLSTM's gates) is one batched convolution over all B·T frames instead of T
small ones. On the CPU every frame runs the cell's fused step instead: the batched convolution's
(B·T)-frame output leaves the cache and measured 2.6x slower than T per-frame convolutions
(``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from ..cells.base import map_state
from ..errors import check_finite_state, check_positive_int, finite_checks_off
from ..registry import create_cell


class ConvRNN(nn.Module):
    """``num_layers`` stacked cells of one registered kind (``cell``), each with ``hidden_channels``.

    Extra keyword arguments go to every cell (e.g. ``kernel_size=5``); each layer is a plain
    registered cell in ``self.layers``. ``batch_inputs`` chooses the batched input convolution
    (``None``: on CUDA only, where it wins)."""

    def __init__(self, cell: str, in_channels: int, hidden_channels: int, num_layers: int = 1, *,
                 batch_inputs: bool | None = None, **cell_kwargs):
        super().__init__()
        check_positive_int("ConvRNN: num_layers", num_layers)
        if batch_inputs not in (None, True, False):
            raise ValueError(f"ConvRNN: batch_inputs must be None, True or False, got {batch_inputs!r}")
        self.batch_inputs = batch_inputs
        self.cell_name, self.num_layers = cell, num_layers
        self.layers = nn.ModuleList(
            create_cell(cell, in_channels if i == 0 else hidden_channels, hidden_channels, **cell_kwargs)
            for i in range(num_layers))
        self._hoist = "drive" in inspect.signature(self.layers[0].forward).parameters
        self.in_channels, self.hidden_channels = in_channels, hidden_channels

    @property
    def channels_last_friendly(self) -> bool:
        return getattr(self.layers[0], "channels_last_friendly", True)

    def recurrent_parameters(self):
        """The recurrent cells' parameters: every layer's (here that is all of them)."""
        return self.layers.parameters()

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            raise ValueError(f"ConvRNN: expected a (batch, time, channels, height, width) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.shape[1] == 0:
            raise ValueError("ConvRNN: the sequence is empty (time dimension 0)")
        if x.shape[2] != self.in_channels:
            raise ValueError(f"ConvRNN: expected {self.in_channels} input channels, got {x.shape[2]} "
                             f"(input shape {tuple(x.shape)})")
        if state is not None and (not isinstance(state, (list, tuple)) or len(state) != self.num_layers):
            raise ValueError(f"ConvRNN: state must be a list of {self.num_layers} per-layer states (as returned), "
                             f"got {type(state).__name__}")
        check_finite_state(x, "ConvRNN input")
        check_finite_state(state, "ConvRNN state")
        with finite_checks_off():            # checked once here, not by the cells at every frame
            return self._run(x, state)

    def _run(self, x, state):
        B, T = x.shape[:2]
        last = []
        for i, cell in enumerate(self.layers):
            s = None if state is None else state[i]
            outs = []
            frames = x.unbind(1)
            batched = self._hoist and (x.is_cuda if self.batch_inputs is None else self.batch_inputs)
            if batched:       # the input-only part of every step at once, over B*T frames
                drives = _split_time(map_state(cell.input_drive(x.flatten(0, 1)), lambda d: d.unflatten(0, (B, T))))
            for t in range(T):
                h, s = cell(frames[t], s, drive=drives[t]) if batched else cell(frames[t], s)
                outs.append(h)
            x = torch.stack(outs, 1)
            last.append(s)
        return x, last

    def extra_repr(self) -> str:
        return f"{self.cell_name!r}, {self.in_channels}, {self.hidden_channels}, num_layers={self.num_layers}"


def _split_time(drive):
    """A drive of (B, T, ...) tensors (a tensor or a tuple) -> T per-frame drives (unbind: one backward)."""
    if isinstance(drive, torch.Tensor):
        return drive.unbind(1)
    return list(zip(*(_split_time(d) for d in drive)))
