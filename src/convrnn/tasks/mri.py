"""MRI reconstruction data in the fastMRI layout: FFTs, masks, data consistency, h5 I/O, phantoms.

File layout (Zbontar et al., 2018, "fastMRI: An Open Dataset and Benchmarks for Accelerated MRI",
arXiv 1811.08839; one HDF5 file per volume):

* ``kspace``: complex64, ``(slices, H, W)`` single-coil or ``(slices, coils, H, W)`` multi-coil.
  ``H`` is the readout (frequency-encode) direction, ``W`` the phase-encode direction; the
  k-space centre (DC) sits at index ``(H // 2, W // 2)``.
* Targets (training/validation files): ``reconstruction_esc`` (single-coil only) and
  ``reconstruction_rss``, float32 ``(slices, h, w)`` magnitude images (``320 x 320`` in the real
  knee data, a centre crop of the 2x readout-oversampled image, so ``(h, w)`` need not equal
  ``(H, W)``).
* ``ismrmrd_header``: the ISMRMRD XML header as bytes (encoded and recon matrix sizes, ...).
* Attributes: ``max`` (max of the target volume), ``norm``, ``acquisition`` (knee: ``CORPD_FBK``
  / ``CORPDFS_FBK``), ``patient_id``.  Test/challenge files drop the targets, store already
  undersampled k-space and add a ``mask`` dataset (bool ``(W,)``) and the attributes
  ``acceleration`` and ``num_low_frequency``.

Conventions used throughout this module:

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
  ``(W,)`` with 1 = column measured.  Zero-filled reconstruction ``x_zf = F^-1 (D * y)``; hard
  data consistency ``DC(x) = F^-1 [ D * y + (1 - D) * F x ]`` (measured lines replaced by the
  measurements, unmeasured lines kept from the estimate; PC-RNN, eq. for its DC layer).
* Root-sum-of-squares coil combination ``rss(x) = sqrt(sum_c |x_c|^2)``.  Because
  ``|z|^2 = re^2 + im^2``, ``rss`` over the interleaved channel dim of the real layout gives the
  same image, and ``rss(x, dim=-3)`` of a ``(..., 2, H, W)`` image is its magnitude.

Masks (fastMRI conventions; standard settings ``MASKS``: 4x with centre fraction 0.08, 8x with
0.04): ``num_low = round(W * center_fraction)`` centre columns ``[(W - num_low + 1) // 2, ...)``
are always sampled (this band contains ``W // 2``).  *Random*: every other column is sampled
independently with probability ``p = (W / acc - num_low) / (W - num_low)`` (clipped to [0, 1]),
so the expected number of sampled columns is exactly ``W / acc``.  *Equispaced*: the centre plus
every ``acc``-th column starting at a seeded offset in ``[0, acc)``; its acceleration is a bit
below ``acc`` because the centre adds lines.  Seeds go to ``numpy.random.default_rng`` (PCG64),
so a mask depends only on ``(W, acc, center_fraction, seed)``, on every machine.

Phantoms (``write_phantom_volumes``): Toft's modified Shepp-Logan head (P. Toft, "The Radon
Transform: Theory and Implementation", PhD thesis, DTU 1996, table 3.1; MATLAB ``phantom``),
treated as the central cross-section of a 3-D ellipsoid stack so slices shrink slightly away from
the centre, plus 3-6 random ellipses (each with its own slab in z), a smooth multiplicative
texture and a smooth phase.  Multi-coil files use smooth coil sensitivities (Gaussian bumps
centred on a ring around the field of view, each with a linear phase ramp) and store
``kspace = fft2c(S_c * image)``.  Targets: single-coil ``reconstruction_esc =
reconstruction_rss = |image|``, multi-coil ``reconstruction_rss = rss_c(S_c * image)``, both at
the full image size (no readout oversampling, so no crop).  Attributes: ``max`` = target volume
max, ``norm`` = Frobenius norm of the stored k-space volume (by Parseval the norm of the complex
coil images), ``acquisition = "CORPD_FBK"``, ``patient_id`` a hash of ``(seed, volume)``.
Volume ``i`` depends only on ``(seed, i)`` and the size arguments, so ``n_volumes=2`` writes the
first two files of ``n_volumes=10``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch

from ..fileio import atomic_write

__all__ = [
    "MRIDataError",
    "MASKS",
    "MODIFIED_SHEPP_LOGAN",
    "fft2c",
    "ifft2c",
    "complex_to_channels",
    "channels_to_complex",
    "random_mask",
    "equispaced_mask",
    "make_mask",
    "apply_mask",
    "zero_filled",
    "rss",
    "data_consistency",
    "read_volume",
    "MRISliceDataset",
    "shepp_logan",
    "phantom_volume",
    "write_phantom_volumes",
]

MASKS = {"4x": (4, 0.08), "8x": (8, 0.04)}
"""Standard fastMRI settings: name -> (acceleration, centre fraction)."""

MASK_KINDS = ("random", "equispaced")
TARGET_KEYS = ("reconstruction_esc", "reconstruction_rss")

# Modified Shepp-Logan (Toft 1996): intensity A, semi-axes a (x) and b (y), centre (x0, y0),
# rotation phi in degrees; image domain [-1, 1]^2 with y pointing up.
MODIFIED_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


class MRIDataError(ValueError):
    """An MRI h5 file that is missing, truncated, not HDF5, or lacks/misshapes a fastMRI key."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the test and mri extras
        raise ImportError("MRI data needs h5py: pip install 'convrnn[mri]' (or pip install h5py)") from None
    return h5py


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


def _ifft2c_np(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=_DIMS), axes=_DIMS, norm="ortho"), axes=_DIMS)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _attr_value(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    return v


def _open(path: Path):
    h5py = _h5py()
    if not path.is_file():
        raise MRIDataError(f"{path}: not found (expected a fastMRI .h5 volume)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # truncated (stored eof mismatch), not HDF5, unreadable
        raise MRIDataError(f"{path}: not a readable HDF5 file, truncated or corrupt ({exc})") from None


@contextlib.contextmanager
def _guard(path: Path, what: str):
    """Turn h5py's errors on damaged files (OSError, RuntimeError, KeyError, ...) into MRIDataError."""
    try:
        yield
    except MRIDataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise MRIDataError(f"{path}: could not {what}, file truncated or corrupt ({type(exc).__name__}: {exc})") from None


def _dataset(f, path: Path, key: str):
    obj = f.get(key)
    if obj is None:
        return None
    if not isinstance(obj, _h5py().Dataset):
        raise MRIDataError(f"{path}: '{key}' is a {type(obj).__name__}, expected an HDF5 dataset")
    return obj


def _inspect(f, path: Path) -> dict:
    """Validate the layout of an open file from metadata only; returns a description."""
    ks = _dataset(f, path, "kspace")
    if ks is None:
        raise MRIDataError(f"{path}: missing key 'kspace' (expected a complex (slices, H, W) or "
                           f"(slices, coils, H, W) dataset; found keys {sorted(f.keys())})")
    if ks.ndim not in (3, 4):
        raise MRIDataError(f"{path}: 'kspace' has shape {ks.shape}; expected (slices, H, W) single-coil or "
                           f"(slices, coils, H, W) multi-coil")
    if ks.dtype.kind != "c":
        raise MRIDataError(f"{path}: 'kspace' has dtype {ks.dtype}; expected complex (complex64)")
    if 0 in ks.shape:
        raise MRIDataError(f"{path}: 'kspace' has an empty dim, shape {ks.shape}")
    n, width = ks.shape[0], ks.shape[-1]
    targets = {}
    for key in TARGET_KEYS:
        t = _dataset(f, path, key)
        if t is None:
            continue
        if t.ndim != 3 or t.shape[0] != n:
            raise MRIDataError(f"{path}: '{key}' has shape {t.shape}; expected ({n}, h, w) to match the {n} "
                               f"slices of 'kspace' {ks.shape}")
        if t.dtype.kind != "f":
            raise MRIDataError(f"{path}: '{key}' has dtype {t.dtype}; expected a real float magnitude image")
        targets[key] = tuple(t.shape)
    mask = _dataset(f, path, "mask")
    if mask is not None and (mask.ndim != 1 or mask.shape[0] != width):
        raise MRIDataError(f"{path}: 'mask' has shape {mask.shape}; expected ({width},), one entry per "
                           f"phase-encode column of 'kspace' {ks.shape}")
    return {"shape": tuple(ks.shape), "multicoil": ks.ndim == 4, "targets": targets, "has_mask": mask is not None,
            "attrs": {k: _attr_value(v) for k, v in f.attrs.items()}}


def _parse_header(xml) -> dict:
    """Encoded/recon matrix sizes ``(x, y, z)`` from an ISMRMRD header, None where absent."""
    out = {"encoded_size": None, "recon_size": None}
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return out
    ns = "{http://www.ismrm.org/ISMRMRD}"
    for key, space in (("encoded_size", "encodedSpace"), ("recon_size", "reconSpace")):
        node = root.find(f"{ns}encoding/{ns}{space}/{ns}matrixSize")
        if node is not None:
            try:
                out[key] = tuple(int(node.find(f"{ns}{a}").text) for a in "xyz")
            except (AttributeError, TypeError, ValueError):
                pass
    return out


def read_volume(path) -> dict:
    """Read and validate one fastMRI h5 volume.

    Returns a dict with ``kspace`` (complex64 array), the targets present
    (``reconstruction_esc``/``reconstruction_rss``, float32), ``mask`` (bool ``(W,)``, test
    files) or None, ``ismrmrd_header`` (str) or None, ``encoded_size``/``recon_size`` parsed from
    it (``(x, y, z)`` or None), ``attrs`` (dict of python values), ``multicoil``, ``fname``.
    Missing ``kspace``, wrong ndim/dtype, a target whose slice count differs, a mis-sized mask,
    or a truncated/corrupt file raise :class:`MRIDataError` naming the file.
    """
    path = Path(path)
    with _open(path) as f, _guard(path, "read the volume"):
        info = _inspect(f, path)
        out = {"kspace": f["kspace"][()].astype(np.complex64, copy=False)}
        for key in info["targets"]:
            out[key] = f[key][()].astype(np.float32, copy=False)
        out["mask"] = f["mask"][()].astype(bool) if info["has_mask"] else None
        hdr = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
    if isinstance(hdr, np.ndarray):
        hdr = hdr.tobytes() if hdr.dtype.kind == "S" else hdr.item()
    if isinstance(hdr, bytes):
        hdr = hdr.decode("utf-8", "replace")
    out["ismrmrd_header"] = hdr
    out.update(_parse_header(hdr) if hdr else {"encoded_size": None, "recon_size": None})
    out.update(attrs=info["attrs"], multicoil=info["multicoil"], fname=path.name)
    return out


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------


def _collect_paths(paths_or_dir) -> list[Path]:
    if isinstance(paths_or_dir, (str, os.PathLike)):
        p = Path(paths_or_dir)
        if p.is_dir():
            files = sorted(p.glob("*.h5"))
            if not files:
                raise MRIDataError(f"{p}: no .h5 files in this folder (expected fastMRI volumes)")
            return files
        return [p]
    files = [Path(p) for p in paths_or_dir]
    if not files:
        raise MRIDataError("MRISliceDataset: empty list of files")
    return files


class MRISliceDataset(torch.utils.data.Dataset):
    """All slices of a set of fastMRI h5 volumes, read lazily (one ``h5py.File`` open per item,
    so it is safe with ``DataLoader`` worker processes).

    Args:
        paths_or_dir: a folder (every ``*.h5`` in it, sorted), one file, or a list of files.
        mask: ``(setting, seed)`` or ``(setting, seed, kind)`` with setting ``"4x"``/``"8x"`` and
            kind ``"random"`` (default) / ``"equispaced"``.  An int seed gives the mask of slice
            ``s`` of file ``fname`` from ``default_rng([seed, crc32(fname), s])`` (fixed, e.g.
            for validation); ``seed=None`` draws a fresh mask per call from torch's global
            generator (training).  Files that store a ``mask`` (test files, already undersampled)
            always use it; ``mask=None`` requires every file to store one.
        mask_per_volume: with an int seed, one mask for every slice of a file, from
            ``default_rng([seed, crc32(fname)])``, as fastMRI's validation does (default: one per slice).
        target_key: ``None`` picks ``reconstruction_esc`` for single-coil files that have it,
            else ``reconstruction_rss``; a key name requires it; ``"computed"`` uses
            ``rss(ifft2c(kspace))`` of the full k-space; ``"none"`` returns an empty target.
        crop: ``(h, w)`` centre crop of the target only (the network input keeps the full k-space
            size, which data consistency needs).

    Items: ``kspace_masked`` float32 ``(2C, H, W)`` (``C = 1`` single-coil; interleaved
    real/imag per coil), ``mask`` float32 ``(1, 1, W)``, ``zero_filled`` float32 ``(2C, H, W)``,
    ``target`` float32 ``(h, w)`` (``(0,)`` for ``"none"``), ``max`` float32 scalar (the file's
    ``max`` attribute, else the target volume's max, else 0), ``fname`` str, ``slice`` int.
    """

    def __init__(self, paths_or_dir, mask=("4x", 0), target_key=None, crop=None, mask_per_volume: bool = False):
        self.files = _collect_paths(paths_or_dir)
        self.mask = self._check_mask_spec(mask)
        self.mask_per_volume = bool(mask_per_volume)
        if crop is not None:
            crop = (int(crop), int(crop)) if isinstance(crop, (int, np.integer)) else tuple(int(c) for c in crop)
            if len(crop) != 2 or min(crop) < 1:
                raise ValueError(f"MRISliceDataset: crop must be None, an int or (h, w), got {crop!r}")
        self.crop = crop
        self.infos, self.target_keys, self.maxes, self.index = [], [], [], []
        for fi, path in enumerate(self.files):
            with _open(path) as f, _guard(path, "read the file's layout"):
                info = _inspect(f, path)
                key = self._target_key(target_key, info, path)
                vmax = info["attrs"].get("max")
                if vmax is None and key in TARGET_KEYS:
                    vmax = float(np.max(f[key][()]))
            if self.mask is None and not info["has_mask"]:
                raise MRIDataError(f"{path}: mask=None but the file has no 'mask' dataset; pass mask=('4x', seed)")
            if key in TARGET_KEYS and crop is not None:
                h, w = info["targets"][key][1:]
                if crop[0] > h or crop[1] > w:
                    raise MRIDataError(f"{path}: crop {crop} is larger than '{key}' ({h}, {w})")
            self.infos.append(info)
            self.target_keys.append(key)
            self.maxes.append(0.0 if vmax is None else float(vmax))
            self.index.extend((fi, s) for s in range(info["shape"][0]))

    @staticmethod
    def _check_mask_spec(mask):
        if mask is None:
            return None
        if not isinstance(mask, (tuple, list)) or len(mask) not in (2, 3):
            raise ValueError(f"MRISliceDataset: mask must be (setting, seed) or (setting, seed, kind), got {mask!r}")
        setting, seed, kind = (*mask, "random")[:3]
        if setting not in MASKS:
            raise ValueError(f"MRISliceDataset: unknown mask setting {setting!r}; expected one of {sorted(MASKS)}")
        if kind not in MASK_KINDS:
            raise ValueError(f"MRISliceDataset: unknown mask kind {kind!r}; expected one of {list(MASK_KINDS)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"MRISliceDataset: mask seed must be a non-negative int or None, got {seed!r}")
        return setting, seed, kind

    @staticmethod
    def _target_key(target_key, info, path):
        if target_key in ("computed", "none"):
            return target_key
        if target_key is None:
            prefer = TARGET_KEYS if not info["multicoil"] else ("reconstruction_rss",)
            for key in prefer:
                if key in info["targets"]:
                    return key
            raise MRIDataError(f"{path}: no target dataset (expected one of {list(prefer)}); pass "
                               f"target_key='computed' or 'none' for files without targets")
        if target_key not in info["targets"]:
            raise MRIDataError(f"{path}: missing target key {target_key!r} (targets present: {sorted(info['targets'])})")
        return target_key

    def __len__(self) -> int:
        return len(self.index)

    def _slice_mask(self, fi: int, s: int, width: int) -> torch.Tensor:
        setting, seed, kind = self.mask
        if seed is not None:
            seed = [int(seed), zlib.crc32(self.files[fi].name.encode())] + ([] if self.mask_per_volume else [s])
        return make_mask(setting, width, seed, kind)

    def __getitem__(self, i: int) -> dict:
        fi, s = self.index[i]
        path, info, key = self.files[fi], self.infos[fi], self.target_keys[fi]
        with _open(path) as f, _guard(path, f"read slice {s}"):
            k = torch.from_numpy(np.asarray(f["kspace"][s], dtype=np.complex64))
            stored = f["mask"][()].astype(np.float32) if info["has_mask"] else None
            target = torch.from_numpy(np.asarray(f[key][s], dtype=np.float32)) if key in TARGET_KEYS else None
        if k.dim() == 2:
            k = k.unsqueeze(0)  # (1, H, W): one coil
        width = k.shape[-1]
        mask = torch.from_numpy(stored) if stored is not None else self._slice_mask(fi, s, width)
        if key == "computed":
            target = rss(ifft2c(k), dim=0)
        elif key == "none":
            target = torch.zeros(0)
        if self.crop is not None and target.numel():
            target = center_crop(target, self.crop)
        km = apply_mask(k, mask)
        return {
            "kspace_masked": complex_to_channels(km).flatten(0, 1),
            "mask": mask.reshape(1, 1, width),
            "zero_filled": complex_to_channels(ifft2c(km)).flatten(0, 1),
            "target": target.contiguous(),
            "max": torch.tensor(self.maxes[fi], dtype=torch.float32),
            "fname": path.name,
            "slice": s,
        }


# --------------------------------------------------------------------------------------------
# phantoms
# --------------------------------------------------------------------------------------------


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, the shorter side spanning [-1, 1], y pointing up."""
    s = min(height, width)
    x = (2 * np.arange(width) + 1 - width) / s
    y = (height - 2 * np.arange(height) - 1) / s
    return np.meshgrid(x, y)  # (H, W) each


def _ellipses(X, Y, table) -> np.ndarray:
    img = np.zeros(X.shape)
    for A, a, b, x0, y0, phi in table:
        if a <= 0 or b <= 0:
            continue
        c, s = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
        dx, dy = X - x0, Y - y0
        u, v = dx * c + dy * s, -dx * s + dy * c
        img[(u / a) ** 2 + (v / b) ** 2 <= 1.0] += A
    return img


def shepp_logan(size=64) -> np.ndarray:
    """Toft's modified Shepp-Logan phantom, float64 ``(H, W)`` with values in [0, 1]."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    X, Y = _grid(int(h), int(w))
    return np.clip(_ellipses(X, Y, MODIFIED_SHEPP_LOGAN), 0.0, None)  # 1 - 0.8 - 0.2 rounds to -6e-17


def _smooth_field(rng, X, Y, n_waves: int, max_freq: float) -> np.ndarray:
    """Sum of random low-frequency plane waves scaled to [-1, 1] peak amplitude."""
    f = np.zeros(X.shape)
    for _ in range(n_waves):
        fx, fy = rng.uniform(-max_freq, max_freq, 2)
        f += rng.uniform(0.5, 1.0) * np.cos(np.pi * (fx * X + fy * Y) + rng.uniform(0, 2 * np.pi))
    return f / max(np.abs(f).max(), 1e-12)


def _phantom_volume(rng, slices: int, H: int, W: int, coils: int):
    """Complex images (slices, H, W) and coil maps (coils, H, W) or None."""
    X, Y = _grid(H, W)
    scale = rng.uniform(0.85, 1.0)
    rot = rng.uniform(-8.0, 8.0)
    shift = rng.uniform(-0.04, 0.04, 2)
    c, s = np.cos(np.deg2rad(rot)), np.sin(np.deg2rad(rot))
    base = []
    for A, a, b, x0, y0, phi in MODIFIED_SHEPP_LOGAN:  # rotate/scale/shift the whole head
        base.append((A, a * scale, b * scale, scale * (x0 * c - y0 * s) + shift[0],
                     scale * (x0 * s + y0 * c) + shift[1], phi + rot))
    extra = []
    for _ in range(int(rng.integers(3, 7))):
        r, t = 0.45 * scale * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        extra.append((rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.2), rng.uniform(0.04, 0.15) * scale,
                      rng.uniform(0.04, 0.15) * scale, r * np.cos(t) + shift[0], r * np.sin(t) + shift[1],
                      rng.uniform(0, 180), rng.uniform(-0.6, 0.6), rng.uniform(0.4, 1.2)))  # z centre, z half-width
    texture = 1.0 + 0.15 * _smooth_field(rng, X, Y, 4, 2.0)
    phase = 0.6 * _smooth_field(rng, X, Y, 3, 0.8) + rng.uniform(-np.pi, np.pi)
    zs = np.linspace(-0.5, 0.5, slices) if slices > 1 else np.zeros(1)
    images = np.empty((slices, H, W), dtype=np.complex128)
    for i, z in enumerate(zs):
        head = np.sqrt(max(1.0 - (z / 1.2) ** 2, 0.0))  # ellipsoid cross-section shrink
        table = [(A, a * head, b * head, x0, y0, p) for A, a, b, x0, y0, p in base]
        for A, a, b, x0, y0, p, zc, zh in extra:
            k = 1.0 - ((z - zc) / zh) ** 2
            if k > 0:
                table.append((A, a * np.sqrt(k), b * np.sqrt(k), x0, y0, p))
        mag = np.clip(_ellipses(X, Y, table), 0.0, None) * texture
        images[i] = mag * np.exp(1j * phase)
    if coils == 0:
        return images, None
    maps = np.empty((coils, H, W), dtype=np.complex128)
    R, sigma = 1.3, rng.uniform(0.7, 0.9)
    t0 = rng.uniform(0, 2 * np.pi)
    for j in range(coils):
        t = t0 + 2 * np.pi * j / coils
        bump = np.exp(-((X - R * np.cos(t)) ** 2 + (Y - R * np.sin(t)) ** 2) / (2 * sigma**2))
        ramp = rng.uniform(-0.5, 0.5, 2)
        maps[j] = bump * np.exp(1j * (ramp[0] * X + ramp[1] * Y + rng.uniform(-np.pi, np.pi)))
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0)).max()
    return images, maps


def _header_xml(H: int, W: int, coils: int, acquisition: str) -> str:
    fov = (H * 0.5, W * 0.5, 3.0)  # 0.5 mm pixels, 3 mm slices
    def space(tag):
        return (f"<{tag}><matrixSize><x>{H}</x><y>{W}</y><z>1</z></matrixSize><fieldOfView_mm>"
                f"<x>{fov[0]}</x><y>{fov[1]}</y><z>{fov[2]}</z></fieldOfView_mm></{tag}>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
            f"<measurementInformation><protocolName>{acquisition}</protocolName></measurementInformation>"
            f"<acquisitionSystemInformation><receiverChannels>{max(coils, 1)}</receiverChannels>"
            "</acquisitionSystemInformation>"
            f"<encoding>{space('encodedSpace')}{space('reconSpace')}<encodingLimits>"
            f"<kspace_encoding_step_1><minimum>0</minimum><maximum>{W - 1}</maximum><center>{W // 2}</center>"
            "</kspace_encoding_step_1></encodingLimits><trajectory>cartesian</trajectory></encoding>"
            "</ismrmrdHeader>")


def _atomic_h5(path: Path, write) -> None:
    """Build the h5 file in memory, then write it with the shared atomic writer (temp + replace)."""
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        write(f)
    atomic_write(path, lambda fh: fh.write(buf.getbuffer()))


def _check_pos_int(v, name: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"phantoms: {name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def phantom_volume(seed: int, index: int, slices: int, size, coils: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Volume ``index`` of the phantom set ``seed`` in memory: k-space complex64 ``(slices, H, W)``
    (``coils=0``) or ``(slices, coils, H, W)``, and the float32 magnitude target ``(slices, H, W)``
    (``|image|``, or the RSS of the coil images).  :func:`write_phantom_volumes` stores exactly these."""
    H, W = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else tuple(size)
    H, W = _check_pos_int(H, "size", 8), _check_pos_int(W, "size", 8)
    slices, coils = _check_pos_int(slices, "slices", 1), _check_pos_int(coils, "coils", 0)
    seed, index = _check_pos_int(seed, "seed", 0), _check_pos_int(index, "index", 0)
    images, maps = _phantom_volume(np.random.default_rng([seed, index]), slices, H, W, coils)
    if maps is None:
        coil_images, target = images, np.abs(images)
    else:
        coil_images = images[:, None] * maps[None]
        target = np.sqrt((np.abs(coil_images) ** 2).sum(1))
    return _fft2c_np(coil_images).astype(np.complex64), target.astype(np.float32)


def write_phantom_volumes(out_dir, n_volumes: int, *, slices: int = 16, size=128, coils: int = 0, seed: int = 0,
                          undersample: str | None = None) -> list[Path]:
    """Write ``n_volumes`` synthetic volumes in the fastMRI h5 layout; returns the paths.

    ``size``: int or ``(H, W)`` (targets have the same size); ``coils=0`` single-coil
    (``kspace (slices, H, W)``, targets ``reconstruction_esc`` and ``reconstruction_rss``),
    ``coils=N`` multi-coil (``kspace (slices, N, H, W)``, target ``reconstruction_rss``).
    ``undersample="4x"``/``"8x"`` writes test-set style files instead: k-space under a random
    mask (seeded per volume), the ``mask`` dataset and ``acceleration``/``num_low_frequency``
    attributes, no targets.  Files are ``phantom_{i:04d}.h5``, written atomically.
    """
    n_volumes = _check_pos_int(n_volumes, "n_volumes", 1)
    slices = _check_pos_int(slices, "slices", 1)
    coils = _check_pos_int(coils, "coils", 0)
    seed = _check_pos_int(seed, "seed", 0)
    H, W = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else tuple(size)
    H, W = _check_pos_int(H, "size", 8), _check_pos_int(W, "size", 8)
    if undersample is not None and undersample not in MASKS:
        raise ValueError(f"write_phantom_volumes: undersample must be None or one of {sorted(MASKS)}, got {undersample!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acquisition = "CORPD_FBK"
    header = _header_xml(H, W, coils, acquisition).encode()
    paths = []
    for v in range(n_volumes):
        kspace, target = phantom_volume(seed, v, slices, (H, W), coils)
        attrs = {"max": float(target.max()), "acquisition": acquisition,
                 "patient_id": hashlib.sha256(f"convrnn-phantom:{seed}:{v}".encode()).hexdigest()}
        mask = None
        if undersample is not None:
            acc, cf = MASKS[undersample]
            mask = random_mask(W, acc, cf, [seed, v, 1]).numpy().astype(bool)
            kspace = kspace * mask
            attrs.update(acceleration=int(acc), num_low_frequency=int(np.round(W * cf)))
        attrs["norm"] = float(np.linalg.norm(kspace))

        def write(f, kspace=kspace, target=target, mask=mask, attrs=attrs):
            f.create_dataset("kspace", data=kspace)
            if mask is None:
                if coils == 0:
                    f.create_dataset("reconstruction_esc", data=target)
                f.create_dataset("reconstruction_rss", data=target)
            else:
                f.create_dataset("mask", data=mask)
            f.create_dataset("ismrmrd_header", data=np.bytes_(header))
            for k, val in attrs.items():
                f.attrs[k] = val

        path = out_dir / f"phantom_{v:04d}.h5"
        _atomic_h5(path, write)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# metrics (fastMRI evaluation conventions) and training losses
# --------------------------------------------------------------------------------------------
#
# Evaluation is volume-wise on magnitude images (fastMRI, Zbontar et al. 2018):
#   NMSE = ||gt - pred||^2 / ||gt||^2                   over the whole volume
#   PSNR = 10 log10( maxval^2 / mean((gt - pred)^2) )   maxval = gt.max() of the volume
#   SSIM = mean over slices of the mean SSIM map of each slice, with data range L = maxval:
#          7x7 uniform window, statistics over every window that fits inside the slice ("valid"),
#          unbiased (co)variances (factor N / (N - 1), N = 49), C1 = (0.01 L)^2, C2 = (0.03 L)^2,
#          SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))
#   (the definition of scikit-image's structural_similarity with its defaults, whose border crop
#   of (win - 1) / 2 pixels is the same as keeping only the valid windows).

SSIM_WIN, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03


def _volume_pair(gt, pred, what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(gt, torch.Tensor):
        gt = gt.detach().cpu().numpy()
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    gt, pred = np.asarray(gt), np.asarray(pred)
    if np.iscomplexobj(gt) or np.iscomplexobj(pred):
        raise TypeError(f"{what}: expected real magnitude images, got complex input (take abs or rss first)")
    if gt.shape != pred.shape:
        raise ValueError(f"{what}: gt {gt.shape} and pred {pred.shape} must have the same shape")
    return gt.astype(np.float64), pred.astype(np.float64)


def center_crop(x, shape):
    """Centre crop of the last two dims to ``shape = (h, w)`` (numpy array or torch tensor).

    The crop starts at ``((H - h) // 2, (W - w) // 2)``; a crop larger than the image raises."""
    h, w = (int(shape), int(shape)) if isinstance(shape, (int, np.integer)) else (int(shape[0]), int(shape[1]))
    H, W = x.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"center_crop: crop {(h, w)} must be positive and fit inside the image {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def nmse(gt, pred) -> float:
    """Normalised MSE ``||gt - pred||^2 / ||gt||^2`` over the whole volume (numpy or torch)."""
    gt, pred = _volume_pair(gt, pred, "nmse")
    return float(np.sum((gt - pred) ** 2) / np.sum(gt ** 2))


def psnr(gt, pred, maxval=None) -> float:
    """PSNR in dB, ``10 log10(maxval^2 / MSE)`` with ``maxval = gt.max()`` of the volume by default;
    ``inf`` when ``pred == gt``."""
    gt, pred = _volume_pair(gt, pred, "psnr")
    maxval = float(gt.max()) if maxval is None else float(maxval)
    mse = float(np.mean((gt - pred) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(maxval ** 2 / mse))


def _box_mean_np(x: np.ndarray, win: int) -> np.ndarray:
    """Mean over every ``win x win`` window that fits ("valid"), last two dims, via an integral image."""
    c = np.pad(np.cumsum(np.cumsum(x, axis=-2), axis=-1), [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    s = c[..., win:, win:] - c[..., :-win, win:] - c[..., win:, :-win] + c[..., :-win, :-win]
    return s / (win * win)


def ssim(gt, pred, maxval=None) -> float:
    """Mean SSIM of a ``(slices, H, W)`` (or one ``(H, W)``) magnitude volume, fastMRI style:
    per-slice SSIM with ``data_range = maxval`` (default ``gt.max()`` of the whole volume), 7x7
    uniform window, K1 0.01, K2 0.03, averaged over slices."""
    gt, pred = _volume_pair(gt, pred, "ssim")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    if gt.ndim != 3:
        raise ValueError(f"ssim: expected (slices, H, W) or (H, W) volumes, got shape {gt.shape}")
    if min(gt.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"ssim: images must be at least {SSIM_WIN}x{SSIM_WIN}, got {gt.shape[-2:]}")
    L = float(gt.max()) if maxval is None else float(maxval)
    C1, C2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    n = SSIM_WIN * SSIM_WIN
    cov = n / (n - 1)
    ux, uy = _box_mean_np(gt, SSIM_WIN), _box_mean_np(pred, SSIM_WIN)
    vx = cov * (_box_mean_np(gt * gt, SSIM_WIN) - ux * ux)
    vy = cov * (_box_mean_np(pred * pred, SSIM_WIN) - uy * uy)
    vxy = cov * (_box_mean_np(gt * pred, SSIM_WIN) - ux * uy)
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux ** 2 + uy ** 2 + C1) * (vx + vy + C2))
    return float(S.mean(axis=(-2, -1)).mean())


def _as_bchw(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{what}: expected a real floating torch.Tensor (B, H, W) or (B, 1, H, W)")
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] == 1:
        return x
    raise ValueError(f"{what}: expected shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range=None) -> torch.Tensor:
    """Differentiable ``1 - SSIM`` (same definition as :func:`ssim`), averaged over the batch.

    ``pred``/``target``: magnitude images ``(B, H, W)`` or ``(B, 1, H, W)``; ``data_range``: a
    number or a ``(B,)`` tensor, default the max of each target image (detached)."""
    x, y = _as_bchw(pred, "ssim_loss pred"), _as_bchw(target, "ssim_loss target")
    if x.shape != y.shape:
        raise ValueError(f"ssim_loss: pred {tuple(x.shape)} and target {tuple(y.shape)} must have the same shape")
    if min(x.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"ssim_loss: images must be at least {SSIM_WIN}x{SSIM_WIN}, got {tuple(x.shape[-2:])}")
    B = x.shape[0]
    if data_range is None:
        L = y.detach().amax(dim=(1, 2, 3))
    else:
        L = torch.as_tensor(data_range, dtype=x.dtype, device=x.device).reshape(-1).expand(B)
    L = L.to(x.dtype).reshape(B, 1, 1, 1)
    C1, C2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    n = SSIM_WIN * SSIM_WIN
    cov = n / (n - 1)

    def mean(z):
        return torch.nn.functional.avg_pool2d(z, SSIM_WIN, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2))
    return 1 - S.mean()


def nmse_ssim_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, data_range=None) -> torch.Tensor:
    """Training loss ``NMSE + alpha * (1 - SSIM)`` on magnitude images ``(B, [1,] H, W)`` (PC-RNN
    trains on a combination of NMSE and SSIM; the weighting form is ours).  NMSE is per image,
    ``||pred - target||^2 / ||target||^2``, averaged over the batch."""
    x, y = _as_bchw(pred, "nmse_ssim_loss pred"), _as_bchw(target, "nmse_ssim_loss target")
    if x.shape != y.shape:
        raise ValueError(f"nmse_ssim_loss: pred {tuple(x.shape)} and target {tuple(y.shape)} must have the same shape")
    err = (x - y).square().sum(dim=(1, 2, 3)) / y.square().sum(dim=(1, 2, 3)).clamp_min(1e-20)
    loss = err.mean()
    if alpha:
        loss = loss + alpha * ssim_loss(x, y, data_range)
    return loss


__all__ += ["center_crop", "nmse", "psnr", "ssim", "ssim_loss", "nmse_ssim_loss"]
