"""MRI toolbox: the pieces reconstruction models and the MRI task share, split as fastMRI does.

* :mod:`convrnn.mri.fft` — complex images as real channels, centred orthonormal FFTs, masking,
  zero filling, root-sum-of-squares and hard data consistency (the conventions of the package);
* :mod:`convrnn.mri.masks` — Cartesian undersampling masks (random, equispaced; 4x/8x settings);
* :mod:`convrnn.mri.h5` — the fastMRI h5 file layout: reading/validating a volume, writing helpers;
* :mod:`convrnn.mri.data` — :class:`MRISliceDataset`, the slices of a set of h5 volumes;
* :mod:`convrnn.mri.phantoms` — Shepp-Logan based phantom volumes written in the fastMRI layout;
* :mod:`convrnn.mri.metrics` — NMSE/PSNR/SSIM (fastMRI evaluation) and the SSIM training loss.

Models (:mod:`convrnn.models.pcrnn`, :mod:`convrnn.models.unet`) import from here, never from
:mod:`convrnn.tasks`.  The names below load on first use (PEP 562), so a model that needs only the
FFTs does not load the h5 or phantom code; h5py is imported only when a file is opened or written.
"""
import importlib

_EXPORTS = {
    "fft2c": "fft", "ifft2c": "fft", "complex_to_channels": "fft", "channels_to_complex": "fft",
    "apply_mask": "fft", "zero_filled": "fft", "rss": "fft", "data_consistency": "fft",
    "MASKS": "masks", "MASK_KINDS": "masks", "random_mask": "masks", "equispaced_mask": "masks",
    "make_mask": "masks",
    "MRIDataError": "h5", "TARGET_KEYS": "h5", "read_volume": "h5",
    "MRISliceDataset": "data",
    "MODIFIED_SHEPP_LOGAN": "phantoms", "shepp_logan": "phantoms", "phantom_volume": "phantoms",
    "write_phantom_volumes": "phantoms",
    "center_crop": "metrics", "nmse": "metrics", "psnr": "metrics", "ssim": "metrics", "ssim_loss": "metrics",
    "nmse_ssim_loss": "metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)     # a submodule: convrnn.mri.fft, ...
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
