"""The slice dataset over fastMRI h5 volumes (:class:`MRISliceDataset`): lazy per-item reads,
seeded masks per file and slice, zero-filled inputs in the real channel layout of
:mod:`convrnn.mri.fft`, targets from the file (:mod:`convrnn.mri.h5`) or computed."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .fft import apply_mask, complex_to_channels, ifft2c, rss
from .h5 import TARGET_KEYS, MRIDataError, _guard, _inspect, _open
from .masks import MASK_KINDS, MASKS, make_mask
from .metrics import center_crop

__all__ = ["MRISliceDataset"]


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
