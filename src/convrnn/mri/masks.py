"""Cartesian undersampling masks along the phase-encode columns (fastMRI conventions).

Standard settings ``MASKS``: 4x with centre fraction 0.08, 8x with 0.04.
``num_low = round(W * center_fraction)`` centre columns ``[(W - num_low + 1) // 2, ...)`` are
always sampled (this band contains ``W // 2``).  *Random*: every other column is sampled
independently with probability ``p = (W / acc - num_low) / (W - num_low)`` (clipped to [0, 1]),
so the expected number of sampled columns is exactly ``W / acc``.  *Equispaced*: the centre plus
every ``acc``-th column starting at a seeded offset in ``[0, acc)``; its acceleration is a bit
below ``acc`` because the centre adds lines.  Seeds go to ``numpy.random.default_rng`` (PCG64),
so a mask depends only on ``(W, acc, center_fraction, seed)``, on every machine.

Masks are float32 ``(W,)`` of 0/1 (1 = column measured); :func:`convrnn.mri.fft.apply_mask`
applies one to k-space.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MASKS", "MASK_KINDS", "random_mask", "equispaced_mask", "make_mask"]

MASKS = {"4x": (4, 0.08), "8x": (8, 0.04)}
"""Standard fastMRI settings: name -> (acceleration, centre fraction)."""

MASK_KINDS = ("random", "equispaced")


def _check_mask_args(width, acceleration, center_fraction, what: str) -> tuple[int, int]:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"{what}: width must be a positive int (number of phase-encode columns), got {width!r}")
    if isinstance(acceleration, bool) or not isinstance(acceleration, (int, float, np.integer, np.floating)) \
            or not np.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"{what}: acceleration must be a number >= 1, got {acceleration!r}")
    if not isinstance(center_fraction, (int, float, np.integer, np.floating)) or not 0 <= center_fraction <= 1:
        raise ValueError(f"{what}: center_fraction must be in [0, 1], got {center_fraction!r}")
    num_low = int(np.round(width * center_fraction))
    return int(width), num_low


def _center_band(width: int, num_low: int) -> slice:
    start = (width - num_low + 1) // 2
    return slice(start, start + num_low)


def _rng(seed) -> np.random.Generator:
    if seed is None:  # draw from torch's global generator: reproducible under torch.manual_seed
        seed = int(torch.randint(0, 2**62, ()).item())
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def random_mask(width: int, acceleration: float, center_fraction: float, seed=0) -> torch.Tensor:
    """Random Cartesian column mask, float32 ``(width,)`` of 0/1.

    ``round(width * center_fraction)`` centre columns are sampled; every other column with
    probability ``p = (width / acceleration - num_low) / (width - num_low)`` (clipped to [0, 1]),
    so ``E[#sampled] = width / acceleration``.  ``seed``: an int, a sequence of ints, a
    ``numpy.random.Generator``, or ``None`` (drawn from torch's global generator).
    """
    width, num_low = _check_mask_args(width, acceleration, center_fraction, "random_mask")
    rng = _rng(seed)
    outer = width - num_low
    p = 0.0 if outer == 0 else float(np.clip((width / acceleration - num_low) / outer, 0.0, 1.0))
    mask = rng.random(width) < p
    mask[_center_band(width, num_low)] = True
    return torch.from_numpy(mask.astype(np.float32))


def equispaced_mask(width: int, acceleration: int, center_fraction: float, seed=0) -> torch.Tensor:
    """Equispaced Cartesian column mask, float32 ``(width,)``: centre band + every
    ``acceleration``-th column from a seeded offset in ``[0, acceleration)``."""
    width, num_low = _check_mask_args(width, acceleration, center_fraction, "equispaced_mask")
    if int(acceleration) != acceleration:
        raise ValueError(f"equispaced_mask: acceleration must be an integer, got {acceleration!r}")
    acc = int(acceleration)
    offset = int(_rng(seed).integers(0, acc))
    mask = np.zeros(width, dtype=bool)
    mask[offset::acc] = True
    mask[_center_band(width, num_low)] = True
    return torch.from_numpy(mask.astype(np.float32))


def make_mask(setting: str, width: int, seed=0, kind: str = "random") -> torch.Tensor:
    """A mask for a standard setting ``"4x"``/``"8x"`` (see ``MASKS``) of ``kind`` random/equispaced."""
    if setting not in MASKS:
        raise ValueError(f"make_mask: unknown mask setting {setting!r}; expected one of {sorted(MASKS)}")
    if kind not in MASK_KINDS:
        raise ValueError(f"make_mask: unknown mask kind {kind!r}; expected one of {list(MASK_KINDS)}")
    acc, cf = MASKS[setting]
    return (random_mask if kind == "random" else equispaced_mask)(width, acc, cf, seed)
