"""Synthetic MRI volumes in the fastMRI h5 layout (see :mod:`convrnn.mri.h5`).

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

import hashlib
from pathlib import Path

import numpy as np

from ..errors import check_int
from .fft import _fft2c_np
from .h5 import _atomic_h5, _header_xml
from .masks import MASKS, random_mask

__all__ = ["MODIFIED_SHEPP_LOGAN", "shepp_logan", "phantom_volume", "write_phantom_volumes"]

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


def _int(v, name: str, minimum: int) -> int:
    """``check_int`` that also takes numpy ints (volume indices and sizes often come from arrays)."""
    return check_int(f"phantoms: {name}", int(v) if isinstance(v, np.integer) else v, minimum)


def check_phantom_options(slices, size, coils) -> tuple[int, int, int, int]:
    """``(slices, H, W, coils)`` from a phantom set's options, checked: ``slices >= 1``, ``size`` an int
    or ``(H, W)``, each at least 8, ``coils >= 0``."""
    H, W = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else tuple(size)
    return _int(slices, "slices", 1), _int(H, "size", 8), _int(W, "size", 8), _int(coils, "coils", 0)


def phantom_volume(seed: int, index: int, slices: int, size, coils: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Volume ``index`` of the phantom set ``seed`` in memory: k-space complex64 ``(slices, H, W)``
    (``coils=0``) or ``(slices, coils, H, W)``, and the float32 magnitude target ``(slices, H, W)``
    (``|image|``, or the RSS of the coil images).  :func:`write_phantom_volumes` stores exactly these."""
    slices, H, W, coils = check_phantom_options(slices, size, coils)
    return _volume(_int(seed, "seed", 0), _int(index, "index", 0), slices, H, W, coils)


def _volume(seed: int, index: int, slices: int, H: int, W: int, coils: int) -> tuple[np.ndarray, np.ndarray]:
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
    n_volumes, seed = _int(n_volumes, "n_volumes", 1), _int(seed, "seed", 0)
    slices, H, W, coils = check_phantom_options(slices, size, coils)
    if undersample is not None and undersample not in MASKS:
        raise ValueError(f"write_phantom_volumes: undersample must be None or one of {sorted(MASKS)}, got {undersample!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acquisition = "CORPD_FBK"
    header = _header_xml(H, W, coils, acquisition).encode()
    paths = []
    for v in range(n_volumes):
        kspace, target = _volume(seed, v, slices, H, W, coils)
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
