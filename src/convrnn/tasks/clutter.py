"""Cluttered glyphs: a procedural classification benchmark where recognising the object takes more than
one feedforward glance, made offline.

After the tasks built to need recurrence: *digit clutter* and *digit debris* (Spoerer, McClure &
Kriegeskorte 2017, where recurrent networks beat feedforward ones of equal size) and *occluded digits*
(Ernst et al. 2021).  An image shows one **target** digit on top of everything else; its label is the
digit's class.  Difficulty knobs (all in units that do not depend on the canvas size):

* ``clutter``: how many whole distractor digits of other classes lie *under* the target, each centred
  within ``spread`` x canvas of the target's centre, so they overlap it;
* ``debris``: how many fragments of digits (a square window of ``fragment`` x the glyph box, any class,
  any rotation) are scattered anywhere on the canvas, under the target;
* ``occlusion``: the fraction of the target's ink covered by grey square occluders (side ``occluder`` x
  the glyph height) drawn *on top*; squares are added until the covered fraction reaches the value, and
  the fraction actually covered is returned per image (``occluded``);
* ``noise``: the standard deviation of additive Gaussian pixel noise (images clipped to [0, 1]);
* ``jitter`` in [0, 1]: the target's affine jitter -- translation up to 0.12 canvas, rotation up to
  20 degrees, scale 1 +- 0.15, shear +- 0.2, each times ``jitter`` (distractors always draw with full
  jitter).

Every glyph is drawn with a one-pixel dark outline (its coverage dilated by a 4-neighbour cross clears
what lies beneath), so occlusion order is visible, as in Spoerer et al.'s clutter.  Difficulty levels
``0..6`` (:data:`LEVELS`) turn all knobs up together; level 0 is a clean centred glyph.  Any knob can
be overridden by name.

Glyphs come from ``glyphs.npz`` next to this file: the digits of Pillow's built-in scalable font at
three stroke widths and two resolutions, made by ``scripts/make_glyphs.py`` and shipped so that an image
depends only on ``(seed, index)``.  Each image draws from its own SplitMix64 stream seeded by
``(seed, start + i)``; generating images 5..14 gives the same pixels as images 5..14 of a larger call.
A numba kernel renders them (bilinear sampling of the glyph under an inverse affine map, per-glyph
bounding boxes): 30,000-490,000 images/s on one core at 32 px depending on the level, 7-13x a Pillow renderer
(``benchmarks/clutter_speed.py``).

Data files: ``.npz`` with ``images`` (N, 1, S, S) uint8, ``labels`` int64, ``occluded`` float32,
``level`` and ``classes``; or an ImageFolder ``root/<class>/<index>.png`` (:func:`write_clutter`),
which :func:`convrnn.tasks.classification.load_image_folder` reads back.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

from .rng import GOLDEN as _GOLDEN
from .rng import mix as _mix
from .rng import next_u64 as _next_u64
from .rng import randbelow as _randbelow
from .rng import uniform as _uniform

__all__ = ["LEVELS", "KNOBS", "CLASSES", "level_knobs", "generate_clutter", "write_clutter", "load_clutter",
           "glyph_atlas"]

CLASSES = tuple("0123456789")
#: the knobs and their meaning (see the module docstring); LEVELS sets the first five per level
KNOBS = ("clutter", "debris", "occlusion", "noise", "jitter", "glyph_size", "spread", "fragment", "occluder")
DEFAULTS = dict(glyph_size=0.55, spread=0.3, fragment=0.4, occluder=0.2)
LEVELS = (
    dict(clutter=0, debris=0, occlusion=0.0, noise=0.0, jitter=0.0),     # 0: a clean centred glyph
    dict(clutter=1, debris=1, occlusion=0.0, noise=0.05, jitter=0.5),
    dict(clutter=1, debris=2, occlusion=0.1, noise=0.05, jitter=1.0),
    dict(clutter=2, debris=3, occlusion=0.15, noise=0.1, jitter=1.0),
    dict(clutter=2, debris=4, occlusion=0.2, noise=0.1, jitter=1.0),
    dict(clutter=3, debris=6, occlusion=0.25, noise=0.15, jitter=1.0),
    dict(clutter=4, debris=8, occlusion=0.3, noise=0.2, jitter=1.0),
)
MAX_LEVEL = len(LEVELS) - 1
_OCCLUDER_VALUE = 0.5
_MAX_OCCLUDERS = 64


def level_knobs(level: int = 0, **overrides) -> dict:
    """The knobs of difficulty ``level`` (0..6) with ``overrides`` (any of :data:`KNOBS`) applied,
    checked: counts are ints >= 0, fractions in range."""
    from ..errors import check_int, check_keys, check_number
    check_int("clutter level", level, 0, MAX_LEVEL)
    check_keys("clutter knobs", overrides, KNOBS)
    k = {**DEFAULTS, **LEVELS[level], **overrides}
    for name in ("clutter", "debris"):
        k[name] = check_int(f"clutter {name}", k[name], 0, 64)
    ranges = dict(occlusion=(0.0, 0.9), noise=(0.0, 2.0), jitter=(0.0, 1.0), glyph_size=(0.1, 1.0),
                  spread=(0.0, 1.0), fragment=(0.05, 1.0), occluder=(0.05, 1.0))
    for name, (lo, hi) in ranges.items():
        k[name] = float(check_number(f"clutter {name}", k[name], lo, hi))
    return k


@lru_cache(maxsize=None)
def glyph_atlas(box: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The shipped glyph coverage at ``box`` (24 or 48) as float64 ``(variants, 10, box + 2, box + 2)`` in
    [0, 1] with a zero border of one pixel (the kernel samples without bounds checks), each glyph's ink box
    ``(variants, 10, 4)`` as (col0, col1, row0, row1), and the glyphs' ink height in that box."""
    with np.load(Path(__file__).with_name("glyphs.npz")) as f:
        ink = {24: int(f["ink"][0]), 48: int(f["ink"][1])}[box]
        raw = f[f"glyphs{box}"]
    extent = np.zeros(raw.shape[:2] + (4,), np.int64)       # each glyph's ink box (w0, w1, h0, h1)
    for v in range(raw.shape[0]):
        for k in range(raw.shape[1]):
            rows, cols = np.nonzero(raw[v, k].any(1))[0], np.nonzero(raw[v, k].any(0))[0]
            extent[v, k] = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    g = np.pad(raw.astype(np.float64) / 255.0, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return np.ascontiguousarray(g), extent, ink


# --------------------------------------------------------------------------- the numba kernel

def _normal_table(bits: int = 12) -> np.ndarray:
    """Quantiles of N(0, 1) at (k + 1/2) / 2**bits: a pixel's noise is one entry picked by 12 random bits
    (a 4,096-level discretised normal, tails cut at 3.5 sigma -- ample for pixel noise, and five draws
    per 64-bit word)."""
    from statistics import NormalDist
    nd = NormalDist()
    m = 1 << bits
    return np.array([nd.inv_cdf((k + 0.5) / m) for k in range(m)])


_NORMAL = _normal_table()


@njit(cache=True)
def _draw(canvas, buf, glyph, cx, cy, a, b, c, d, w0, w1, h0, h1, value, whole):
    """Composite ``glyph`` (a (box + 2)^2 coverage with a zero border: glyph pixel (r, q) at [r + 1, q + 1]),
    restricted to the window columns [w0, w1) x rows [h0, h1) of the glyph box (``whole``: the window only
    bounds the glyph's ink, so no tap needs zeroing), at canvas centre (cx, cy)
    under the linear map [[a, b], [c, d]] (glyph -> canvas), with a one-pixel dark outline:
    canvas <- canvas * (1 - dilate(alpha)) + value * alpha, alpha sampled bilinearly under the inverse map.
    Leaves the glyph's coverage in ``buf`` over the returned box (x0, x1, y0, y1); the caller clears it."""
    S = canvas.shape[0]
    box = glyph.shape[0] - 2
    g = 0.5 * box
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    xmin = ymin = 1e30
    xmax = ymax = -1e30
    for u in (w0, w1):
        for v in (h0, h1):
            x = cx + a * (u - g) + b * (v - g)
            y = cy + c * (u - g) + d * (v - g)
            xmin, xmax, ymin, ymax = min(xmin, x), max(xmax, x), min(ymin, y), max(ymax, y)
    x0 = max(int(math.floor(xmin)) - 1, 0)
    x1 = min(int(math.ceil(xmax)) + 2, S)
    y0 = max(int(math.floor(ymin)) - 1, 0)
    y1 = min(int(math.ceil(ymax)) + 2, S)
    if x0 >= x1 or y0 >= y1:
        return 0, 0, 0, 0
    lo_u, hi_u, lo_v, hi_v = w0 - 1.0, float(w1), h0 - 1.0, float(h1)
    for y in range(y0, y1):
        py = y + 0.5 - cy
        px = x0 + 0.5 - cx
        u = g + ia * px + ib * py - 0.5
        v = g + ic * px + id_ * py - 0.5
        for x in range(x0, x1):
            acc = 0.0
            if lo_u < u < hi_u and lo_v < v < hi_v:
                iu = int(u + 1.0)            # floor(u) + 1 (u > -1): the padded column of the left tap
                iv = int(v + 1.0)
                fu = u + 1.0 - iu
                fv = v + 1.0 - iv
                t00 = glyph[iv, iu]
                t01 = glyph[iv, iu + 1]
                t10 = glyph[iv + 1, iu]
                t11 = glyph[iv + 1, iu + 1]
                if not whole:                # zero the taps outside the fragment's window
                    if iv - 1 < h0:
                        t00 = t01 = 0.0
                    if iv >= h1:
                        t10 = t11 = 0.0
                    if iu - 1 < w0:
                        t00 = t10 = 0.0
                    if iu >= w1:
                        t01 = t11 = 0.0
                acc = (1.0 - fv) * ((1.0 - fu) * t00 + fu * t01) + fv * ((1.0 - fu) * t10 + fu * t11)
            buf[y, x] = acc
            u += ia
            v += ic
    for y in range(y0, y1):
        for x in range(x0, x1):
            al = buf[y, x]
            dil = al
            if y > y0 and buf[y - 1, x] > dil:
                dil = buf[y - 1, x]
            if y + 1 < y1 and buf[y + 1, x] > dil:
                dil = buf[y + 1, x]
            if x > x0 and buf[y, x - 1] > dil:
                dil = buf[y, x - 1]
            if x + 1 < x1 and buf[y, x + 1] > dil:
                dil = buf[y, x + 1]
            canvas[y, x] = canvas[y, x] * (1.0 - dil) + value * al
    return x0, x1, y0, y1


@njit(cache=True, inline="always")
def _affine(st, scale, jitter):
    """The linear part [[a, b], [c, d]] of a jittered glyph map: scale x rotation x shear."""
    s = scale * (1.0 + 0.15 * jitter * (2.0 * _uniform(st) - 1.0))
    th = math.radians(20.0) * jitter * (2.0 * _uniform(st) - 1.0)
    sh = 0.2 * jitter * (2.0 * _uniform(st) - 1.0)
    co, si = math.cos(th), math.sin(th)
    # R(th) @ [[1, sh], [0, 1]] * s
    return s * co, s * (co * sh - si), s * si, s * (si * sh + co)


@njit(cache=True)
def _render(images, labels, occluded, masks, atlas, extent, normal, ink, seed, start, clutter, debris, occlusion,
            noise, jitter, glyph_size, spread, fragment, occluder):
    """Draw image ``i`` from the stream ``(seed, start + i)``: label, fragments, distractors, the target,
    occluders, noise (see the module docstring); ``masks`` gets 1 on the target's visible ink, 2 under
    occluders."""
    n, S = images.shape[0], images.shape[1]
    V, C, box = atlas.shape[0], atlas.shape[1], atlas.shape[2] - 2
    scale = glyph_size * S / ink
    canvas = np.zeros((S, S))
    buf = np.zeros((S, S))
    base = _mix(np.uint64(seed) + _GOLDEN)
    st = np.zeros(1, dtype=np.uint64)
    win = max(2, int(round(fragment * box)))
    for i in range(n):
        st[0] = _mix(base + np.uint64(start + i) * _GOLDEN)
        canvas[:] = 0.0
        label = _randbelow(st, C)
        labels[i] = label
        tx = 0.5 * S + 0.12 * S * jitter * (2.0 * _uniform(st) - 1.0)
        ty = 0.5 * S + 0.12 * S * jitter * (2.0 * _uniform(st) - 1.0)
        for _ in range(debris):                       # fragments anywhere, under everything
            g = atlas[_randbelow(st, V), _randbelow(st, C)]
            w0 = _randbelow(st, box - win + 1)
            h0 = _randbelow(st, box - win + 1)
            th = 2.0 * math.pi * _uniform(st)
            s = scale * (0.85 + 0.3 * _uniform(st))
            co, si = math.cos(th), math.sin(th)
            fx, fy = S * _uniform(st), S * _uniform(st)
            # put the window's centre (not the box's) at (fx, fy)
            ox, oy = w0 + 0.5 * win - 0.5 * box, h0 + 0.5 * win - 0.5 * box
            cx = fx - s * (co * ox - si * oy)
            cy = fy - s * (si * ox + co * oy)
            x0, x1, y0, y1 = _draw(canvas, buf, g, cx, cy, s * co, -s * si, s * si, s * co, w0, w0 + win, h0,
                                   h0 + win, 0.6 + 0.4 * _uniform(st), False)
            buf[y0:y1, x0:x1] = 0.0
        for _ in range(clutter):                      # whole digits of other classes, overlapping the target
            k = _randbelow(st, C - 1)
            k = k + 1 if k >= label else k
            vk = _randbelow(st, V)
            a, b, c, d = _affine(st, scale, 1.0)
            cx = tx + spread * S * (2.0 * _uniform(st) - 1.0)
            cy = ty + spread * S * (2.0 * _uniform(st) - 1.0)
            e = extent[vk, k]
            x0, x1, y0, y1 = _draw(canvas, buf, atlas[vk, k], cx, cy, a, b, c, d, e[0], e[1], e[2], e[3],
                                   0.6 + 0.4 * _uniform(st), True)
            buf[y0:y1, x0:x1] = 0.0
        vk = _randbelow(st, V)                        # the target, on top
        a, b, c, d = _affine(st, scale, jitter)
        value = 1.0 if jitter == 0.0 else 0.6 + 0.4 * _uniform(st)
        e = extent[vk, label]
        x0, x1, y0, y1 = _draw(canvas, buf, atlas[vk, label], tx, ty, a, b, c, d, e[0], e[1], e[2], e[3], value,
                               True)
        inked = 0
        for y in range(y0, y1):
            for x in range(x0, x1):
                if buf[y, x] > 0.5:
                    inked += 1
                    masks[i, y, x] = 1
        covered = 0
        side = max(1, int(round(occluder * glyph_size * S)))
        tries = 0
        while covered < inked and covered < occlusion * inked and tries < _MAX_OCCLUDERS:
            tries += 1
            j = _randbelow(st, inked - covered)       # centre a square on a still-visible ink pixel
            py = px = -1
            for y in range(y0, y1):
                for x in range(x0, x1):
                    if masks[i, y, x] == 1:
                        if j == 0:
                            py, px = y, x
                        j -= 1
                if py >= 0:
                    break
            qy0, qx0 = max(py - side // 2, 0), max(px - side // 2, 0)
            qy1, qx1 = min(qy0 + side, S), min(qx0 + side, S)
            for y in range(qy0, qy1):
                for x in range(qx0, qx1):
                    canvas[y, x] = _OCCLUDER_VALUE
                    if masks[i, y, x] == 1:
                        masks[i, y, x] = 2             # target ink, occluded
                        covered += 1
        occluded[i] = covered / inked if inked > 0 else 0.0
        buf[y0:y1, x0:x1] = 0.0
        word = np.uint64(0)
        left = 0
        for y in range(S):
            for x in range(S):
                v = canvas[y, x]
                if noise > 0.0:
                    if left == 0:
                        word = _next_u64(st)
                        left = 5
                    v += noise * normal[np.int64(word & np.uint64(4095))]
                    word >>= np.uint64(12)
                    left -= 1
                v = min(max(v, 0.0), 1.0)
                images[i, y, x] = np.uint8(int(v * 255.0 + 0.5))


# --------------------------------------------------------------------------- Python API

def generate_clutter(n: int, size: int = 32, level: int = 0, seed: int = 0, start: int = 0, masks: bool = False,
                     **knobs) -> dict:
    """``n`` images of difficulty ``level`` (0..6; knobs of :data:`KNOBS` override it) on a ``size`` px
    canvas: ``images`` (n, 1, size, size) uint8, ``labels`` (n,) int64 (a digit 0-9), ``occluded`` (n,)
    float32 (the fraction of the target's ink under occluders); with ``masks``, also ``masks`` (n, size,
    size) uint8: 1 where the target's ink shows, 2 where an occluder covers it.  Image ``i`` depends only
    on ``(seed, start + i)``."""
    from ..errors import check_int
    check_int("clutter n", n, 1)
    check_int("clutter size", size, 8, 1024)
    check_int("clutter seed", seed, 0)
    check_int("clutter start", start, 0)
    k = level_knobs(level, **knobs)
    box = 24 if k["glyph_size"] * size <= 26 else 48
    atlas, extent, ink = glyph_atlas(box)
    images = np.zeros((int(n), size, size), np.uint8)
    labels = np.zeros(int(n), np.int64)
    occluded = np.zeros(int(n), np.float32)
    m = np.zeros((int(n), size, size), np.uint8)         # the kernel marks the target's ink here
    _render(images, labels, occluded, m, atlas, extent, _NORMAL, ink, int(seed), int(start), k["clutter"], k["debris"],
            k["occlusion"], k["noise"], k["jitter"], k["glyph_size"], k["spread"], k["fragment"], k["occluder"])
    out = {"images": images[:, None], "labels": labels, "occluded": occluded, "level": int(level), "knobs": k}
    if masks:
        out["masks"] = m
    return out


def write_clutter(out, n: int, size: int = 32, level: int = 0, seed: int = 0, fmt: str | None = None,
                  **knobs) -> Path:
    """Generate and write ``n`` images: ``fmt="npz"`` (default for a ``.npz`` path; atomic) or
    ``"folder"`` (an ImageFolder ``out/<class>/<index>.png``)."""
    from ..errors import check_choice
    from ..fileio import atomic_write
    out = Path(out)
    fmt = check_choice("clutter format", fmt or ("npz" if out.suffix == ".npz" else "folder"), ("npz", "folder"))
    d = generate_clutter(n, size, level, seed, **knobs)
    if fmt == "npz":
        arrays = dict(images=d["images"], labels=d["labels"], occluded=d["occluded"], level=np.int64(level),
                      seed=np.int64(seed), classes=np.array(CLASSES))
        atomic_write(out, lambda f: np.savez_compressed(f, **arrays))
        return out
    from PIL import Image
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    width = len(str(int(n) - 1))
    for i, (img, lab) in enumerate(zip(d["images"][:, 0], d["labels"])):
        Image.fromarray(img, mode="L").save(out / CLASSES[lab] / f"{i:0{width}d}.png")
    return out


def load_clutter(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A clutter ``.npz`` (or any ImageFolder) as ``(images uint8 (N, 1, S, S), labels int64, classes)``,
    like the other classification loaders; a file that is not one is refused by name."""
    from .classification import ClassificationDataError, load_image_folder
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, mode="L")
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
            classes = [str(c) for c in f["classes"]] if "classes" in f else list(CLASSES)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ClassificationDataError(f"{path}: not a clutter .npz (images, labels): {e}") from None
    if images.ndim != 4 or images.shape[1] != 1 or images.dtype != np.uint8 or labels.shape != (len(images),):
        raise ClassificationDataError(f"{path}: expected images (N, 1, S, S) uint8 and labels (N,), got "
                                      f"{images.shape} {images.dtype} and {labels.shape}")
    if len(labels) and not (0 <= labels.min() and labels.max() < len(classes)):
        raise ClassificationDataError(f"{path}: labels outside 0..{len(classes) - 1}")
    return images, labels.astype(np.int64), classes
