"""Where and in what precision to run: device choice and bf16 autocast.

``amp="auto"`` takes bf16 autocast where the hardware runs it natively and it wins — CPUs with
AVX512-BF16 or AMX (with channels_last, a DT-net training step ran 1.8x faster than fp32 on one
core; every cell and model family gained 1.05-1.75x from bf16 alone, ``benchmarks/RESULTS.md``) and
CUDA devices with bf16 — and fp32 elsewhere. Under autocast the
convolutions run in bf16 while what must stay exact stays in fp32: losses and cross-entropy
(:mod:`convrnn.losses` casts logits), halting units and ACT/PonderNet sums (:mod:`convrnn.halting`),
the halted-output accumulation and the metrics.
"""
from __future__ import annotations

import contextlib

import torch

from .errors import check_choice

AMP_CHOICES = ("auto", "none", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str, device) -> str:
    """``auto`` -> ``bf16`` where it is native (see the module docstring), else ``none``."""
    check_choice("amp", amp, AMP_CHOICES)
    if amp != "auto":
        return amp
    dev = torch.device(device)
    if dev.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "none"
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "none"


def autocast(amp: str, device):
    """A bf16 autocast context for ``amp="bf16"`` (``"auto"`` is resolved first), else a no-op."""
    dev = torch.device(device)
    if resolve_amp(amp, dev) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16)


def channels_last_wins(model, device="cpu") -> bool:
    """Does channels_last speed ``model`` up on ``device``? On CUDA: yes. On the CPU: unless the model
    says ``channels_last_friendly = False``. A weight-tied model or sequence wrapper answers for its
    cell, and the gated cells (ConvGRU, ConvLSTM, hGRU, RGC) say no: their gate nonlinearities run on
    channel slices that channels_last makes strided (measured: bf16 + channels_last 0.6-0.8x of bf16
    alone). Multi-area networks, PC-RNN and the U-Net, where the feedforward convolutions dominate,
    gain (1.2-1.5x over bf16 alone; ``benchmarks/RESULTS.md``)."""
    if torch.device(device).type == "cuda":
        return True
    return bool(getattr(model, "channels_last_friendly", True))


def use_channels_last(model, setting="auto", device="cpu"):
    """``model`` in channels_last when ``setting`` is True, or "auto" and :func:`channels_last_wins`."""
    if setting not in (True, False, "auto"):
        raise ValueError(f"channels_last must be true, false or auto, got {setting!r}")
    on = channels_last_wins(model, device) if setting == "auto" else setting
    return model.to(memory_format=torch.channels_last) if on else model


def is_channels_last(model) -> bool:
    """Are ``model``'s convolution weights in channels_last (so its inputs should be too)?"""
    w = next((p for p in model.parameters()      # the first weight whose two layouts differ
              if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1), None)
    return w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def fp32(fn):
    """Decorator: run ``fn`` with autocast off and floating tensor arguments cast to float32 (halting
    units and other small computations whose precision matters more than their cost)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
            return fn(*args, **kwargs)
    return wrapper
