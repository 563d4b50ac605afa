"""Pyramid Convolutional RNN (PC-RNN) for accelerated MRI reconstruction.

Source: E. Z. Chen, P. Wang, X. Chen, T. Chen, S. Sun, "Pyramid Convolutional RNN for MRI Image
Reconstruction", IEEE TMI 41(8), 2022 (arXiv 1912.00543).  The paper ships no code; this is our
own implementation from its description.

Notation: ``y`` the measured (undersampled) k-space, ``D`` the 0/1 column mask, ``F`` the centred
orthonormal 2-D DFT (:func:`convrnn.mri.fft.fft2c`).  Complex images are real tensors with
interleaved ``(re, im)`` channel pairs, ``C`` coils as ``2C`` channels (no sensitivity maps).

Hard data consistency (:func:`convrnn.mri.fft.data_consistency`)::

    DC(z) = F^-1[ D * y + (1 - D) * F z ]

Three ConvRNN modules ``m = 1, 2, 3`` run in sequence, coarse to fine.  Module ``m`` has an
encoder ``enc_m`` whose stride ``s_m`` (4, 2, 1) sets the internal resolution ``H/s_m x W/s_m``,
a recurrent unit, and a decoder ``dec_m`` (transposed convolution back to ``H x W``), so each
module takes and returns full-size images.  With ``x^1_0 = F^-1(D * y)`` (zero-filled), ``h_0 = 0``
and ``T_m`` iterations::

    h_t   = res_m(h_{t-1}) + enc_m(x^m_{t-1})          (additive conv-RNN, the paper's unit)
    x^m_t = DC( dec_m(h_t) )                            t = 1 .. T_m
    x^{m+1}_0 = x^m_{T_m}                              (the next module starts from this output)

``res_m`` is a small conv block (conv - ReLU - conv); since ``h_0 = 0``, the first step is taken
as ``h_1 = enc_m(x^m_0)`` (``res_m(0)`` would only add the conv biases).  With ``cell=<name>`` any
registered cell of the library replaces the additive update: ``out_t, h_t = cell(enc_m(x^m_{t-1}), h_{t-1})`` and
``x^m_t = DC(dec_m(out_t))``.  A final CNN combines the three module outputs::

    x = DC( CNN([x^1_{T_1}, x^2_{T_2}, x^3_{T_3}]) )

(the final DC keeps the measured lines of the output equal to ``y``).  For multi-coil data the
magnitude image is the root-sum-of-squares over coils (:meth:`PCRNNOutput.magnitude`).

Implementation choices that are ours, not the paper's: the encoder of stride ``s > 1`` is one
``2s x 2s`` convolution (``3 x 3`` for ``s = 1``) followed by ReLU; the decoder is a transposed
convolution of the same geometry, ReLU, and a ``3 x 3`` convolution to ``2C`` channels (sizes not
divisible by the stride are handled via ``output_size``); the final CNN is three ``3 x 3``
convolutions with ReLUs; with ``normalize=True`` (default) the input k-space is divided by a
per-sample scale (the max of the zero-filled RSS image) and the output multiplied back, which
leaves data consistency exact (up to FFT rounding); ``residual=True`` adds a skip,
``x^m_t = DC(x^m_{t-1} + dec_m(h_t))``.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..cells.base import conv
from ..errors import DictConfig, check_image, check_int, check_keys, check_positive_int, finite_checks_off
from ..registry import create_cell, get_cell_class, register_architecture, register_model
from ..mri.fft import apply_mask, data_consistency, ifft2c, rss

__all__ = ["PCRNNConfig", "PCRNN", "PCRNNOutput", "AdditiveRNNCell", "pcrnn"]


@dataclass
class PCRNNConfig(DictConfig):
    _what = "pcrnn config"

    coils: int = 1                     # C: the input/output have 2C channels
    width: int = 32                    # hidden channels of every module
    iterations: tuple = (5, 5, 5)      # default T_m per module (forward(steps=...) overrides)
    scales: tuple = (4, 2, 1)          # encoder stride of each module, coarse to fine
    cell: str = "additive"             # "additive" (the paper) or a registered cell name
    cell_kwargs: dict = field(default_factory=dict)
    final_width: int = 32              # channels of the final combining CNN
    residual: bool = False             # x_t = DC(x_{t-1} + dec(h_t)) instead of DC(dec(h_t))
    normalize: bool = True             # per-sample scaling of the input k-space (undone at the output)

    def __post_init__(self):
        for k in ("coils", "width", "final_width"):
            check_positive_int(f"pcrnn config: {k}", getattr(self, k))
        scales = tuple(self.scales) if isinstance(self.scales, (list, tuple)) else None
        if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or (s > 1 and s % 2)
                             for s in scales):    # the one "1 or even" check: no helper for it
            raise ValueError(f"pcrnn config: scales must be a non-empty sequence of strides, each 1 or even, "
                             f"got {self.scales!r}")
        self.scales = scales
        self.iterations = _check_iterations(self.iterations, len(scales), "pcrnn config: iterations")
        if not isinstance(self.cell_kwargs, dict):
            raise ValueError(f"pcrnn config: cell_kwargs must be a mapping, got {self.cell_kwargs!r}")
        if self.cell == "additive":
            check_keys("cell 'additive'", self.cell_kwargs, ["kernel_size"])
        else:
            get_cell_class(self.cell)  # unknown names raise with the list of valid cells


def _check_iterations(it, n: int, what: str) -> tuple:
    if isinstance(it, int) and not isinstance(it, bool):
        it = (it,) * n
    if not isinstance(it, (list, tuple)) or len(it) != n:
        raise ValueError(f"{what}: expected an int or {n} ints (one per module), got {it!r}")
    for v in it:
        check_int(f"{what}: each iteration count", v, 0)
    return tuple(int(v) for v in it)


class AdditiveRNNCell(nn.Module):
    """PC-RNN's recurrent unit ``h' = res(h) + x`` with ``res = conv - ReLU - conv``.

    Follows the library's cell interface ``out, state = cell(x, state)`` (``x`` is the encoded
    image, already ``hidden_channels`` wide); not registered, as it needs ``in == hidden``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if in_channels != hidden_channels:
            raise ValueError(f"AdditiveRNNCell: in_channels ({in_channels}) must equal hidden_channels "
                             f"({hidden_channels})")
        check_int("AdditiveRNNCell: kernel_size", kernel_size, 1, odd=True)
        self.hidden_channels = hidden_channels
        self.res = nn.Sequential(conv(hidden_channels, hidden_channels, kernel_size), nn.ReLU(),
                                 conv(hidden_channels, hidden_channels, kernel_size))

    def forward(self, x, state=None):
        h = x if state is None else self.res(state) + x   # res(0) is a constant: skip it at t = 1
        return h, h


class ConvRNNModule(nn.Module):
    """One pyramid level: encoder of stride ``scale``, recurrent unit, decoder back to full size."""

    def __init__(self, channels: int, width: int, scale: int, cell: str, cell_kwargs: dict):
        super().__init__()
        self.scale = scale
        k, p = (3, 1) if scale == 1 else (2 * scale, scale // 2)
        self.enc = nn.Sequential(nn.Conv2d(channels, width, k, stride=scale, padding=p), nn.ReLU())
        if cell == "additive":
            self.cell = AdditiveRNNCell(width, width, **cell_kwargs)
        else:
            self.cell = create_cell(cell, width, width, **cell_kwargs)
        self.up = nn.ConvTranspose2d(width, width, k, stride=scale, padding=p)
        self.out = conv(width, channels, 3)

    def decode(self, h: torch.Tensor, size) -> torch.Tensor:
        return self.out(torch.relu(self.up(h, output_size=list(size))))

    def forward(self, x0, kspace, mask, iterations: int, residual: bool, keep: list | None):
        x, state = x0, None
        for _ in range(iterations):
            out, state = self.cell(self.enc(x), state)
            z = self.decode(out, x.shape[-2:])
            x = data_consistency(x + z if residual else z, kspace, mask)
            if keep is not None:
                keep.append(x)
        return x


@dataclass
class PCRNNOutput:
    """``image``: final reconstruction ``(B, 2C, H, W)`` (complex channel layout, data consistent).
    ``module_outputs``: the output of each module, coarse to fine.  ``intermediates``: with
    ``return_intermediates=True``, one list per module of the image after every iteration (so
    ``sum(iterations)`` images in all), else ``None``."""

    image: torch.Tensor
    module_outputs: list
    intermediates: list | None = None
    scales: tuple = ()

    def magnitude(self, image: torch.Tensor | None = None) -> torch.Tensor:
        """RSS magnitude ``(B, H, W)`` over coils (for one coil the complex modulus) of ``image``
        (default: the final reconstruction)."""
        return rss(self.image if image is None else image, dim=-3)

    def intermediate_magnitudes(self) -> list:
        """Magnitudes of ``intermediates``: one ``(T_m, B, H, W)`` tensor per module."""
        if self.intermediates is None:
            raise ValueError("PCRNNOutput: no intermediates; call the model with return_intermediates=True")
        return [torch.stack([self.magnitude(x) for x in xs]) if xs else None for xs in self.intermediates]


class PCRNN(nn.Module):
    """Pyramid Convolutional RNN (see the module docstring for the equations)."""

    def __init__(self, config: PCRNNConfig | None = None, **overrides):
        super().__init__()
        cfg = config or PCRNNConfig()
        if overrides:
            check_keys("pcrnn config", overrides, [f.name for f in dataclasses.fields(PCRNNConfig)])
            cfg = dataclasses.replace(cfg, **overrides)
        self.config = cfg
        ch = 2 * cfg.coils
        self.levels = nn.ModuleList(ConvRNNModule(ch, cfg.width, s, cfg.cell, cfg.cell_kwargs) for s in cfg.scales)
        fw = cfg.final_width
        self.final = nn.Sequential(conv(ch * len(cfg.scales), fw, 3), nn.ReLU(), conv(fw, fw, 3), nn.ReLU(),
                                   conv(fw, ch, 3))

    @property
    def channels(self) -> int:
        return 2 * self.config.coils

    def recurrent_parameters(self):
        """The weight-tied recurrent units' parameters: every pyramid level's cell (encoders, decoders
        and the final CNN are not included)."""
        for level in self.levels:
            yield from level.cell.parameters()

    def forward(self, kspace: torch.Tensor, mask, steps=None, *, return_intermediates: bool = False,
                iterations=None) -> PCRNNOutput:
        """Reconstruct from masked k-space ``(B, 2C, H, W)`` (real/imag interleaved per coil) and
        its column ``mask`` (``(W,)``, ``(1, 1, W)`` or ``(B, 1, 1, W)``; 1 = measured).
        ``steps``: the iterations T_m, an int (every module) or one int per module (default
        ``config.iterations``), as ``steps`` of the other families. ``iterations=`` is its deprecated
        older name."""
        if iterations is not None:
            if steps is not None:
                raise ValueError("pcrnn: pass steps= or its deprecated name iterations=, not both")
            warnings.warn("PCRNN(..., iterations=) is deprecated: use steps=", DeprecationWarning, stacklevel=2)
            steps = iterations
        cfg = self.config
        check_image(kspace, self.channels, "pcrnn k-space")
        H, W = kspace.shape[-2:]
        smax = max(cfg.scales)
        if H < smax or W < smax:
            raise ValueError(f"pcrnn: image size {(H, W)} is smaller than the largest stride {smax}")
        its = cfg.iterations if steps is None else _check_iterations(steps, len(cfg.scales),
                                                                     "pcrnn steps (iterations per module)")
        mask = torch.as_tensor(mask, device=kspace.device)
        y = apply_mask(kspace, mask)  # validates that the mask broadcasts
        x = ifft2c(y)
        if cfg.normalize:
            scale = rss(x, dim=1).detach().amax(dim=(-2, -1)).clamp_min(1e-12)[:, None, None, None]
        else:
            scale = torch.ones((), dtype=x.dtype, device=x.device)
        x, yn = x / scale, y / scale
        outs, inter = [], [] if return_intermediates else None
        with finite_checks_off():            # k-space checked once above, not by the cells at every iteration
            for module, t in zip(self.levels, its):
                keep = [] if return_intermediates else None
                x = module(x, yn, mask, t, cfg.residual, keep)
                outs.append(x)
                if return_intermediates:
                    inter.append([z * scale for z in keep])
        final = self.final(torch.cat(outs, 1)) * scale
        image = data_consistency(final, y, mask)
        return PCRNNOutput(image=image, module_outputs=[o * scale for o in outs], intermediates=inter,
                           scales=tuple(cfg.scales))

    def reconstruct(self, kspace_masked: torch.Tensor, mask, steps=None, *, forward=None) -> torch.Tensor:
        """The MRI task's entry point: RSS magnitude ``(B, H, W)`` of the reconstruction from masked
        k-space ``(B, 2C, H, W)`` and masks ``(B, 1, 1, W)``; ``steps`` (iterations per module) as in
        :meth:`forward`. ``forward``: the callable that runs this model (default ``self``; the task
        passes a DistributedDataParallel wrapper so that gradients are synchronised)."""
        return (self if forward is None else forward)(kspace_masked, mask, steps).magnitude()


register_architecture(PCRNN, PCRNNConfig)      # checkpoints rebuild it (convrnn.checkpoint.load_model)


@register_model("pcrnn")
def pcrnn(**overrides) -> PCRNN:
    """PC-RNN with keyword overrides of :class:`PCRNNConfig` (``coils=1, width=32,
    iterations=(5, 5, 5), scales=(4, 2, 1), cell="additive", ...``); unknown keys raise ValueError."""
    return PCRNN(PCRNNConfig.from_dict(overrides))
