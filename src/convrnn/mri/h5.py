"""fastMRI h5 files: reading and validating one volume, and the helpers that write them.

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

h5py is an optional dependency (extra ``mri``), imported only when a file is opened or written.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..fileio import atomic_write

__all__ = ["MRIDataError", "TARGET_KEYS", "read_volume"]

TARGET_KEYS = ("reconstruction_esc", "reconstruction_rss")


class MRIDataError(ValueError):
    """An MRI h5 file that is missing, truncated, not HDF5, or lacks/misshapes a fastMRI key."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the test and mri extras
        raise ImportError("MRI data needs h5py: pip install 'convrnn[mri]' (or pip install h5py)") from None
    return h5py


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
# writing
# --------------------------------------------------------------------------------------------


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
