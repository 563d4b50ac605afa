"""Compatibility module: the MRI toolbox moved to :mod:`convrnn.mri`.

``from convrnn.tasks.mri import X`` keeps working for every public name; new code should import
from :mod:`convrnn.mri` (FFTs and data consistency in :mod:`convrnn.mri.fft`, masks in
:mod:`convrnn.mri.masks`, fastMRI h5 files in :mod:`convrnn.mri.h5`, the dataset in
:mod:`convrnn.mri.data`, phantoms in :mod:`convrnn.mri.phantoms`, metrics and the SSIM loss in
:mod:`convrnn.mri.metrics`).  The MRI task itself (trainer glue, evaluation) is
:mod:`convrnn.tasks.mri_recon`.
"""

from __future__ import annotations

from ..mri.data import MRISliceDataset
from ..mri.fft import (apply_mask, channels_to_complex, complex_to_channels, data_consistency, fft2c, ifft2c, rss,
                       zero_filled)
from ..mri.h5 import TARGET_KEYS, MRIDataError, read_volume
from ..mri.masks import MASK_KINDS, MASKS, equispaced_mask, make_mask, random_mask
from ..mri.metrics import SSIM_K1, SSIM_K2, SSIM_WIN, center_crop, nmse, nmse_ssim_loss, psnr, ssim, ssim_loss
from ..mri.phantoms import MODIFIED_SHEPP_LOGAN, phantom_volume, shepp_logan, write_phantom_volumes

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
    "center_crop",
    "nmse",
    "psnr",
    "ssim",
    "ssim_loss",
    "nmse_ssim_loss",
]

# module globals of the old tasks/mri.py outside __all__, still importable from here (listed so linters see them used)
_COMPAT = (MASK_KINDS, TARGET_KEYS, SSIM_WIN, SSIM_K1, SSIM_K2)
