"""Complex images as real channels, centred orthonormal FFTs, RSS and data consistency.

Conventions (used by the whole :mod:`convrnn.mri` package and by the reconstruction models):

* Centred orthonormal 2-D DFT over the last two dims,
  ``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))`` and
  ``ifft2c(k) = fftshift(ifft2(ifftshift(k), norm="ortho"))``.  Written out for an ``N``-point
  axis with centre ``c = N // 2`` (the same for even and odd ``N``)::

      X[p] = 1/sqrt(N) * sum_q x[q] * exp(-2 pi i (p - c)(q - c) / N)

  It is unitary: ``ifft2c(fft2c(x)) = x`` and ``||fft2c(x)|| = ||x||`` (Parseval).
* Complex images as real channels (as PC-RNN does, Wang et al., IEEE TMI 2022): a complex
  ``(..., H, W)`` tensor becomes ``(..., 2, H, W)`` with channels ``(real, imag)``; ``C`` coils
  ``(..., C, H, W)`` become ``(..., 2C, H, W)`` interleaved ``(re_0, im_0, re_1, im_1, ...)``.
  The one-coil case of the second is the first, so every function that takes the channel layout
  accepts any even channel count in dim ``-3``.  ``fft2c``/``ifft2c``/``zero_filled``/
  ``data_consistency`` take either a complex tensor or that real layout and answer in kind.
* Cartesian undersampling along the phase-encode columns (last dim ``W``): a mask ``D`` of shape
  ``(W,)`` with 1 = column measured (see :mod:`convrnn.mri.masks`).  Zero-filled reconstruction
  ``x_zf = F^-1 (D * y)``; hard data consistency ``DC(x) = F^-1 [ D * y + (1 - D) * F x ]``
  (measured lines replaced by the measurements, unmeasured lines kept from the estimate; PC-RNN,
  eq. for its DC layer).
* Root-sum-of-squares coil combination ``rss(x) = sqrt(sum_c |x_c|^2)``.  Because
  ``|z|^2 = re^2 + im^2``, ``rss`` over the interleaved channel dim of the real layout gives the
  same image, and ``rss(x, dim=-3)`` of a ``(..., 2, H, W)`` image is its magnitude.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fft2c", "ifft2c", "complex_to_channels", "channels_to_complex", "apply_mask", "zero_filled", "rss",
           "data_consistency"]


# --------------------------------------------------------------------------------------------
# complex <-> channels, centred orthonormal FFTs
# --------------------------------------------------------------------------------------------


_DIMS = (-2, -1)


def complex_to_channels(z: torch.Tensor) -> torch.Tensor:
    """Complex ``(..., H, W)`` -> real ``(..., 2, H, W)`` with channels ``(real, imag)``.

    For ``C`` coils ``(B, C, H, W)`` gives ``(B, C, 2, H, W)``; ``.flatten(-4, -3)`` turns that
    into the interleaved ``(B, 2C, H, W)`` layout the rest of the module accepts.
    """
    if not isinstance(z, torch.Tensor) or not z.is_complex():
        raise TypeError(f"complex_to_channels: expected a complex tensor (..., H, W), got "
                        f"{getattr(z, 'dtype', type(z).__name__)}")
    if z.dim() < 2:
        raise ValueError(f"complex_to_channels: expected at least 2 dims (..., H, W), got shape {tuple(z.shape)}")
    return torch.stack((z.real, z.imag), dim=-3)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``(..., 2C, H, W)`` (interleaved real/imag pairs) -> complex.

    ``(..., 2, H, W)`` gives ``(..., H, W)``; ``C > 1`` pairs give ``(..., C, H, W)``.
    """
    _check_channels(x, "channels_to_complex")
    if x.shape[-3] == 2:
        return torch.complex(x[..., 0, :, :], x[..., 1, :, :])
    pairs = x.unflatten(-3, (x.shape[-3] // 2, 2))
    return torch.complex(pairs[..., 0, :, :], pairs[..., 1, :, :])


def _check_channels(x, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{what}: expected a real tensor in the channel layout (..., 2C, H, W), got {x.dtype}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point tensor (..., 2C, H, W), got {x.dtype}")
    if x.dim() < 3 or x.shape[-3] % 2 or x.shape[-3] == 0:
        raise ValueError(f"{what}: expected real/imag channel pairs in dim -3, i.e. shape (..., 2C, H, W) "
                         f"with an even, non-zero channel count, got shape {tuple(x.shape)}")


def _as_complex(x: torch.Tensor, what: str):
    """(complex tensor, restore) where restore maps a complex result back to x's layout/dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        if x.dim() < 2:
            raise ValueError(f"{what}: expected at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
        return x, lambda z: z
    _check_channels(x, what)
    dtype, two = x.dtype, x.shape[-3] == 2
    if dtype not in (torch.float32, torch.float64):
        x = x.float()  # complex32 is barely supported: compute half/bfloat16 in float32
    z = channels_to_complex(x)

    def restore(out: torch.Tensor) -> torch.Tensor:
        ch = complex_to_channels(out)
        return (ch if two else ch.flatten(-4, -3)).to(dtype)

    return z, restore


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two dims: ``fftshift(fft2(ifftshift(x)))``.

    ``x``: complex ``(..., H, W)`` or real channel layout ``(..., 2C, H, W)``; answers in kind.
    """
    z, restore = _as_complex(x, "fft2c")
    k = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(z, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)
    return restore(k)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c`: ``fftshift(ifft2(ifftshift(k)))`` (orthonormal, centred)."""
    z, restore = _as_complex(k, "ifft2c")
    x = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(z, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)
    return restore(x)


def _fft2c_np(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=_DIMS), axes=_DIMS, norm="ortho"), axes=_DIMS)


# --------------------------------------------------------------------------------------------
# masking, zero filling, coil combination, data consistency
# --------------------------------------------------------------------------------------------


def _mask_like(mask, ref: torch.Tensor, what: str) -> torch.Tensor:
    mask = torch.as_tensor(mask, device=ref.device)
    try:
        torch.broadcast_shapes(mask.shape, ref.shape)
    except RuntimeError:
        raise ValueError(f"{what}: mask of shape {tuple(mask.shape)} does not broadcast against k-space of shape "
                         f"{tuple(ref.shape)}; use (W,) or (B, 1, 1, W)") from None
    return mask != 0


def apply_mask(kspace: torch.Tensor, mask) -> torch.Tensor:
    """``D * y``: zero the unmeasured columns (complex or channel layout; mask broadcast on the right)."""
    m = _mask_like(mask, kspace, "apply_mask")
    return torch.where(m, kspace, torch.zeros((), dtype=kspace.dtype, device=kspace.device))


def zero_filled(kspace: torch.Tensor, mask=None) -> torch.Tensor:
    """Zero-filled reconstruction ``F^-1(D * y)`` in ``kspace``'s layout (complex or channels).

    ``mask=None``: ``kspace`` is already undersampled (e.g. a fastMRI test file).
    """
    return ifft2c(kspace if mask is None else apply_mask(kspace, mask))


def rss(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Root sum of squares ``sqrt(sum |x|^2)`` over ``dim`` (complex coils, or real channels:
    over the interleaved ``2C`` channel dim it equals the RSS of the complex coil images)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"rss: expected a torch.Tensor, got {type(x).__name__}")
    sq = (x.real.square() + x.imag.square() if x.is_complex() else x.square()).sum(dim)
    if sq.requires_grad:      # d sqrt(s)/ds is infinite at s = 0: keep gradients finite where a pixel is exactly 0
        sq = sq.clamp_min(torch.finfo(sq.dtype).tiny)
    return sq.sqrt()


def data_consistency(image_pred: torch.Tensor, kspace_measured: torch.Tensor, mask) -> torch.Tensor:
    """Hard data consistency ``F^-1[ D * y + (1 - D) * F x ]`` (PC-RNN's DC layer).

    ``image_pred`` and ``kspace_measured`` share a layout (complex ``(..., [C,] H, W)`` or real
    ``(..., 2C, H, W)``) and shape; ``mask`` (0/1 or bool) broadcasts against them, e.g. ``(W,)``
    or ``(B, 1, 1, W)``.  The measured lines of ``fft2c`` of the result equal ``y`` and the others
    equal ``fft2c(x)``, up to float rounding of the FFT pair.
    """
    if not isinstance(image_pred, torch.Tensor) or not isinstance(kspace_measured, torch.Tensor):
        raise TypeError("data_consistency: image_pred and kspace_measured must be torch.Tensors")
    if image_pred.shape != kspace_measured.shape or image_pred.is_complex() != kspace_measured.is_complex():
        raise ValueError(f"data_consistency: image_pred {tuple(image_pred.shape)} {image_pred.dtype} and "
                         f"kspace_measured {tuple(kspace_measured.shape)} {kspace_measured.dtype} must have the "
                         f"same shape and layout (both complex or both real channels)")
    k = fft2c(image_pred)
    m = _mask_like(mask, k, "data_consistency")
    return ifft2c(torch.where(m, kspace_measured.to(k.dtype), k))
