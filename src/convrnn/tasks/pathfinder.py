# Over 600 lines on purpose: one generator (numba kernels, presets, rendering) and its file formats.
"""PathFinder contour-integration data: generator, on-disk I/O (npz and LRA-style folders), CLI.

Task (Linsley et al., 2018): an image holds two *target contours* plus *distractor* contours,
each a chain of short line segments ("paddles") separated by small gaps, and two circular
markers at contour ends.  Positive (label 1): both markers sit on the two ends of the same
target contour; negative (label 0): one marker on each target contour, so negatives also hold a
full second target contour.  Difficulty = contour length in paddles (any ``length >= 3``;
distractors have ``length // 3`` paddles).

This is an independent implementation written from the task description, not a port of the
original generator.  Geometry (all in drawing units of a ``draw_size`` canvas):

* A contour starts at a *seed* point with a uniform direction.  Paddle ``k`` is the segment
  ``start -> start + paddle_length * u(theta_k)``; paddle ``k+1`` starts ``paddle_margin`` beyond
  the tip of paddle ``k`` along its own direction ``theta_{k+1} = theta_k + delta``, with ``delta``
  drawn from the density ``cos(min(|delta| * continuity, pi/2))**2`` (rejection sampling).  A
  candidate is rejected (and a new ``delta`` drawn, up to ``_DIR_TRIES`` times; then the contour
  fails and is erased) when it leaves the padded canvas or would touch ink it must not touch.
* *Touching* is decided on the output pixel grid, which makes the no-touch guarantee exact for
  the delivered images: every output pixel holding any ink of a contour is owned by that contour,
  and a new paddle (or marker) may not ink a pixel whose ``(2*gap+1)^2`` neighbourhood holds a
  pixel of another contour, or of its own contour more than ``self_window`` paddles back.  So in
  the output, different contours (markers included) are never 8-adjacent (``gap=1``).
* Rendering: paddles are rectangles of width ``paddle_thickness``, markers disks of radius
  ``marker_radius`` at contour ends, drawn binary on a raster of ``out_size * antialias`` pixels
  and box-averaged to ``out_size`` (``uint8 = round(255 * coverage)``), i.e. anti-aliased.

Labels and the marker-distance shortcut.  Labels come in pairs: images ``2k`` and ``2k+1``
have opposite labels, the order drawn from ``(seed, k)``; so any even ``n`` holds exactly
``n // 2`` positives and image ``i``'s label depends only on ``(seed, i)``.  In the original
generator the marker distance alone predicts the label (88% at length 6).  Here both classes
share one distance distribution *by construction*: every image first grows target contour A on
an empty canvas and sets ``d = |A.start - A.tip|``.  A positive marks A's two ends (distance
``d``) and grows contour B from a seed at least ``seed_distance`` from A's seed.  A negative
marks one end ``e`` of A (start or tip at random) and places B's seed -- B's marker -- on the
circle of radius ``d`` around ``e`` (angle uniform, retried until B fits), so its marker distance
is ``d`` as well.  When B cannot be placed, the image restarts with a new A but *keeps* ``d``:
a negative reuses it, a restarted positive regrows A until its end-to-end distance is within
half an output pixel of ``d``.  Only after ``_ATTEMPTS`` restarts is ``d`` given up (never at
the presets' usual lengths, except about 3.5 images in 1,000 of the crowded ``lra64`` at length 14).  The benchmark measures a distance-only classifier at chance on
2,000 images per length (``benchmarks/RESULTS_pathfinder.md``).

Randomness: image ``i`` depends only on ``(seed, i)`` (a splitmix64 stream per image), so
``generate_pathfinder(10, seed=s)`` is the first 10 images of ``generate_pathfinder(100, seed=s)``.

On disk: one ``.npz`` (``images`` uint8 (n,S,S), ``labels`` int64, ``markers`` int64 (n,2,2)
(row, col) in output pixels, optional ``dense``), or an LRA-style folder
``imgs/<batch>/sample_<j>.png`` (8-bit grayscale) + ``metadata/<batch>.npy`` (plain text, one
line per image, 4th whitespace-separated field = label; we write
``imgs/<b> sample_<j>.png <j> <label> <length> m:<r0>,<c0>,<r1>,<c1>``).  ``load_pathfinder`` reads
both, including folders written by Long Range Arena's generator (markers are then unknown).

CLI: ``python -m convrnn.tasks.pathfinder OUT -n 1000 --length 14 --preset lra32 [--format lra]``.
The trainer glue (labels or the dense target) is in :mod:`convrnn.tasks.pathfinder_task`.

(Over 600 lines: the numba kernels share one geometry, RNG and undo log, and the two on-disk formats
belong with the generator whose metadata they carry.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from ..fileio import atomic_write as _atomic_write
from ..fileio import check_npz_file
from .rng import GOLDEN as _GOLDEN
from .rng import mix as _mix
from .rng import uniform as _unif

__all__ = [
    "PathfinderDataError",
    "PathfinderGenerationError",
    "PathfinderPreset",
    "PRESETS",
    "generate_pathfinder",
    "save_pathfinder",
    "load_pathfinder",
    "marker_distance",
    "distance_only_accuracy",
]


class PathfinderDataError(ValueError):
    """A PathFinder file, folder, image or metadata line that is missing, malformed or corrupt."""


class PathfinderGenerationError(ValueError):
    """The requested contours cannot be placed on the canvas (length too long for the preset)."""


@dataclass(frozen=True)
class PathfinderPreset:
    """Generator geometry.  Lengths are in drawing units of a ``draw_size`` canvas.

    draw_size:        canvas side in drawing units.
    out_size:         side of the delivered image in pixels.
    padding:          paddle end points stay this far from the canvas border (>= marker_radius).
    paddle_length, paddle_thickness, paddle_margin (gap between consecutive paddles),
    marker_radius, continuity (see the module docstring).
    seed_distance:    minimum distance between the seeds of the two target contours (positives;
                      in negatives the second seed is the second marker, at the matched distance).
    distractor_budget, distractor_rule: ``num_distractors = budget // (length // 3)`` for
                      ``"floor"``, ``int(budget / (length / 3))`` for ``"true"``; each distractor
                      has ``length // 3`` paddles.
    antialias:        the binary raster has ``out_size * antialias`` pixels per side.
    gap:              contours are separated by at least this many empty output pixels
                      (Chebyshev); ``gap=1`` means no two contours are 8-adjacent.
    self_window:      a paddle may be adjacent to the previous ``self_window`` paddles of its own
                      contour, never to older ones (no self-touching curls).
    crossing:         distractors may touch and cross the other contours (the original generator's
                      contours come close, touch and cross); never a marker.  Where they cross, the
                      pixel belongs to the distractor (drawn last) in ``contours`` and the dense target.
    """

    draw_size: float
    out_size: int
    padding: float
    paddle_length: float
    paddle_thickness: float
    paddle_margin: float
    marker_radius: float
    continuity: float
    seed_distance: float
    distractor_budget: float
    distractor_rule: str = "true"
    antialias: int = 2
    gap: int = 1
    self_window: int = 1
    crossing: bool = False

    def num_distractors(self, length: int) -> int:
        k = max(1, int(length) // 3)
        if self.distractor_rule == "floor":
            return int(self.distractor_budget // k)
        return int(self.distractor_budget / (int(length) / 3.0))

    def distractor_length(self, length: int) -> int:
        return max(1, int(length) // 3)

    @property
    def scale(self) -> float:
        """Raster pixels per drawing unit."""
        return self.out_size * self.antialias / self.draw_size

    def validate(self) -> None:
        f = dataclasses.asdict(self)
        for k in ("draw_size", "paddle_length", "paddle_thickness", "marker_radius", "continuity"):
            if not f[k] > 0:
                raise ValueError(f"preset: {k} must be > 0, got {f[k]}")
        for k in ("padding", "paddle_margin", "seed_distance", "distractor_budget"):
            if not f[k] >= 0:
                raise ValueError(f"preset: {k} must be >= 0, got {f[k]}")
        if self.out_size < 4 or self.antialias < 1 or self.gap < 0 or self.self_window < 1:
            raise ValueError("preset: need out_size >= 4, antialias >= 1, gap >= 0, self_window >= 1")
        if self.padding < self.marker_radius:
            raise ValueError(f"preset: padding ({self.padding}) must be >= marker_radius ({self.marker_radius})")
        if 2 * self.padding >= self.draw_size:
            raise ValueError("preset: padding leaves no room on the canvas")
        if self.distractor_rule not in ("floor", "true"):
            raise ValueError(f"preset: distractor_rule must be 'floor' or 'true', got {self.distractor_rule!r}")
        if self.paddle_thickness * self.scale < 1.0:
            raise ValueError("preset: paddle_thickness * scale must be >= 1 raster pixel (raise antialias)")


# LRA table (data.md): size | margin | paddle len | thickness | seed dist | marker r | continuity |
# distractors.  Padding and the anti-aliasing raster are not in the table: chosen here (padding >=
# marker radius).  lra128's margin is "2-3" in the table; 3 is used.
PRESETS: dict[str, PathfinderPreset] = {
    "lra32": PathfinderPreset(32, 32, 2, 2, 0.5, 1, 1.5, 1.0, 7, 20, "floor", antialias=4),
    "lra64": PathfinderPreset(64, 64, 3, 5, 1, 1, 2.5, 1.8, 12, 22, "true", antialias=4),
    "lra128": PathfinderPreset(128, 128, 4, 5, 1.5, 3, 3, 1.8, 20, 35, "true", antialias=2),
    "lra256": PathfinderPreset(256, 256, 6, 5, 2, 3, 5, 1.8, 27, 30, "true", antialias=2),
    # the original defaults: 300 px drawn, 150 px delivered (the 2x drawing is the anti-aliasing)
    "classic150": PathfinderPreset(300, 150, 22, 5, 2, 3, 5, 1.8, 27, 30, "floor", antialias=2),
    # lra32's paddle geometry on larger canvases, for contours longer than lra32 holds (<= 18): a fully
    # convolutional model trained on lra32 runs on them unchanged. Distractor budgets keep the ink density near
    # lra32's (15-17% of pixels against 19%).
    "lra32_48": PathfinderPreset(48, 48, 2, 2, 0.5, 1, 1.5, 1.0, 7, 65, "floor", antialias=4),
    "lra32_64": PathfinderPreset(64, 64, 2, 2, 0.5, 1, 1.5, 1.0, 7, 115, "floor", antialias=4),
}

# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------

_PAIR_SALT = np.uint64(0x5851F42D4C957F2D)

_DIR_TRIES = 24      # direction draws per paddle before the contour fails
_A_TRIES = 30        # seeds for target contour A per attempt
_A_MATCH_TRIES = 400  # seeds for A when a restarted positive must match the first distance
_B_TRIES = 60        # placements of target contour B per contour A (positives)
_NB_TRIES = 400      # placements of B at the matched marker distance per A (negatives)
_D_TRIES = 12        # seeds per distractor (a distractor that never fits is left out)
_ATTEMPTS = 40       # whole-image restarts that keep the first marker distance d
_FALLBACK = 60       # further restarts with d free, before PathfinderGenerationError
_BIG = 30000


@njit(cache=True, inline="always")
def _delta(st, cont):
    """Draw delta with density cos(min(|delta| * cont, pi/2))^2 (zero beyond pi / (2 cont))."""
    hw = 0.5 * np.pi / cont
    if hw > np.pi:
        hw = np.pi
    while True:
        d = (2.0 * _unif(st) - 1.0) * hw
        c = np.cos(d * cont)
        if _unif(st) < c * c:
            return d


@njit(cache=True, inline="always")
def _frame(kind, ax, ay, bx, by, h, R):
    """Unit direction, length and the clipped raster bounding box (rows r0..r1, cols c0..c1) of a
    shape: kind 0 a rectangle a->b of half width h, kind 1 a disk at a of radius h."""
    if kind == 0:
        lx = bx - ax
        ly = by - ay
        L = np.sqrt(lx * lx + ly * ly)
        ux = lx / L
        uy = ly / L
        x0 = min(ax, bx) - h - 1.0
        x1 = max(ax, bx) + h + 1.0
        y0 = min(ay, by) - h - 1.0
        y1 = max(ay, by) + h + 1.0
    else:
        L = 0.0
        ux = 0.0
        uy = 0.0
        x0 = ax - h - 1.0
        x1 = ax + h + 1.0
        y0 = ay - h - 1.0
        y1 = ay + h + 1.0
    return ux, uy, L, max(0, int(y0)), min(R - 1, int(y1)), max(0, int(x0)), min(R - 1, int(x1))


@njit(cache=True, inline="always")
def _covers(kind, qx, qy, ux, uy, L, h, h2):
    """Does the shape cover the pixel centre at offset (qx, qy) from its start point?"""
    if kind == 0:
        t = qx * ux + qy * uy
        if t < 0.0 or t > L:
            return False
        p = qx * uy - qy * ux
        return -h <= p <= h
    return qx * qx + qy * qy <= h2


@njit(cache=True)
def _shape_ok(kind, ax, ay, bx, by, h, R, aa, S, c, k, win, gap, owner, pidx, cross=False):
    """May contour ``c`` (paddle index ``k``) ink this shape?  kind 0: rectangle a->b of half
    width h; kind 1: disk at a of radius h.  Coordinates in raster pixels (x = col, y = row).
    With ``cross`` it may touch and cross other contours' paddles, never a marker (A's markers
    carry index ``_BIG``; B's marker is B's index 0)."""
    ux, uy, L, r0, r1, c0, c1 = _frame(kind, ax, ay, bx, by, h, R)
    h2 = h * h
    last = -1
    for yy in range(r0, r1 + 1):
        qy = yy + 0.5 - ay
        for xx in range(c0, c1 + 1):
            qx = xx + 0.5 - ax
            if not _covers(kind, qx, qy, ux, uy, L, h, h2):
                continue
            br = yy // aa
            bc = xx // aa
            b = br * S + bc
            if b == last:
                continue
            last = b
            for rr in range(max(0, br - gap), min(S, br + gap + 1)):
                for cc in range(max(0, bc - gap), min(S, bc + gap + 1)):
                    o = owner[rr * S + cc]
                    if o != 0 and (o != c or pidx[rr * S + cc] < k - win):
                        q = pidx[rr * S + cc]
                        if cross and o != c and q != _BIG and not (o == 2 and q == 0):
                            continue
                        return False
    return True


@njit(cache=True)
def _shape_mark(kind, ax, ay, bx, by, h, R, aa, S, c, k, owner, pidx, log, top):
    """Mark the output pixels this shape inks as owned by ``c`` (index ``k``); log for undo."""
    ux, uy, L, r0, r1, c0, c1 = _frame(kind, ax, ay, bx, by, h, R)
    h2 = h * h
    for yy in range(r0, r1 + 1):
        qy = yy + 0.5 - ay
        for xx in range(c0, c1 + 1):
            qx = xx + 0.5 - ax
            if not _covers(kind, qx, qy, ux, uy, L, h, h2):
                continue
            b = (yy // aa) * S + xx // aa
            if owner[b] != c or pidx[b] < k:
                log[top, 0] = b
                log[top, 1] = owner[b]
                log[top, 2] = pidx[b]
                top += 1
                owner[b] = c
                pidx[b] = k
    return top


@njit(cache=True)
def _undo(owner, pidx, log, top, to):
    while top > to:
        top -= 1
        b = log[top, 0]
        owner[b] = log[top, 1]
        pidx[b] = log[top, 2]
    return top


@njit(cache=True)
def _rasterize(kind, ax, ay, bx, by, h, R, raster):
    ux, uy, L, r0, r1, c0, c1 = _frame(kind, ax, ay, bx, by, h, R)
    h2 = h * h
    for yy in range(r0, r1 + 1):
        qy = yy + 0.5 - ay
        for xx in range(c0, c1 + 1):
            qx = xx + 0.5 - ax
            if not _covers(kind, qx, qy, ux, uy, L, h, h2):
                continue
            raster[yy * R + xx] = 1


@njit(cache=True)
def _grow(st, c, sx, sy, th, n_pad, lo, hi, Lp, mg, cont, s, hp, R, aa, S, win, gap,
          owner, pidx, log, top, shapes, nsh, cross=False):
    """Grow contour ``c`` from seed (sx, sy) with first direction ``th``.  Returns
    (ok, top, nsh, tip_x, tip_y); on failure everything it marked is undone."""
    top0 = top
    nsh0 = nsh
    x = sx
    y = sy
    for k in range(n_pad):
        ok = False
        for t in range(_DIR_TRIES):
            if k == 0:
                tc = th if t == 0 else 2.0 * np.pi * _unif(st)
                gx = x
                gy = y
            else:
                tc = th + _delta(st, cont)
                gx = x + mg * np.cos(tc)
                gy = y + mg * np.sin(tc)
            ex = gx + Lp * np.cos(tc)
            ey = gy + Lp * np.sin(tc)
            if gx < lo or gx > hi or gy < lo or gy > hi or ex < lo or ex > hi or ey < lo or ey > hi:
                continue
            if _shape_ok(0, gx * s, gy * s, ex * s, ey * s, hp, R, aa, S, c, k, win, gap, owner, pidx, cross):
                top = _shape_mark(0, gx * s, gy * s, ex * s, ey * s, hp, R, aa, S, c, k, owner, pidx, log, top)
                shapes[nsh, 0] = 0
                shapes[nsh, 1] = gx * s
                shapes[nsh, 2] = gy * s
                shapes[nsh, 3] = ex * s
                shapes[nsh, 4] = ey * s
                shapes[nsh, 5] = hp
                nsh += 1
                x = ex
                y = ey
                th = tc
                ok = True
                break
        if not ok:
            top = _undo(owner, pidx, log, top, top0)
            return False, top, nsh0, 0.0, 0.0
    return True, top, nsh, x, y


@njit(cache=True)
def _add_marker(cx, cy, c, k, s, hm, R, aa, S, owner, pidx, log, top, shapes, nsh):
    top = _shape_mark(1, cx * s, cy * s, 0.0, 0.0, hm, R, aa, S, c, k, owner, pidx, log, top)
    shapes[nsh, 0] = 1
    shapes[nsh, 1] = cx * s
    shapes[nsh, 2] = cy * s
    shapes[nsh, 3] = 0.0
    shapes[nsh, 4] = 0.0
    shapes[nsh, 5] = hm
    return top, nsh + 1


@njit(cache=True)
def _generate_batch(n, seed, length, n_dist, d_len, D, pad, Lp, thick, mg, mr, cont, seed_dist,
                    R, aa, S, gap, win, cap, images, labels, markers, contours, want_contours, dense, want_dense, attempts,
                    cross):
    s = R / D
    hp = 0.5 * thick * s
    hm = mr * s
    lo = pad
    hi = D - pad
    tol = 0.5 * D / S
    owner = np.zeros(S * S, np.int16)
    pidx = np.zeros(S * S, np.int16)
    max_sh = 2 * length + n_dist * d_len + 4
    shapes = np.zeros((max_sh, 6), np.float64)
    log = np.zeros((cap, 3), np.int32)
    raster = np.zeros(R * R, np.uint8)
    st = np.zeros(1, np.uint64)
    pst = np.zeros(1, np.uint64)
    base = _mix(seed + _GOLDEN)
    pbase = _mix(seed ^ _PAIR_SALT)
    mpos = np.zeros((2, 2), np.float64)
    mown = np.zeros(2, np.int64)
    for i in range(n):
        # label: pairs (2k, 2k+1) have opposite labels, order from (seed, k)
        pst[0] = _mix(pbase + np.uint64(i // 2) * _GOLDEN)
        bit = 1 if _unif(pst) < 0.5 else 0
        lab = bit ^ (i & 1)
        st[0] = _mix(base + np.uint64(i) * _GOLDEN)
        done = False
        d_first = -1.0
        for attempt in range(_ATTEMPTS + _FALLBACK):
            owner[:] = 0
            pidx[:] = 0
            top = 0
            nsh = 0
            # ---- target contour A (id 1), grown on an empty canvas in both classes
            okA = False
            ax = 0.0
            ay = 0.0
            tx = 0.0
            ty = 0.0
            # a restarted positive must reproduce the first A's end-to-end distance (within
            # half an output pixel) so that restarts cannot bias the distance distribution
            match = lab == 1 and d_first >= 0.0 and attempt < _ATTEMPTS
            for ta in range(_A_MATCH_TRIES if match else _A_TRIES):
                ax = lo + (hi - lo) * _unif(st)
                ay = lo + (hi - lo) * _unif(st)
                th = 2.0 * np.pi * _unif(st)
                okA, top, nsh, tx, ty = _grow(st, 1, ax, ay, th, length, lo, hi, Lp, mg, cont, s, hp,
                                              R, aa, S, win, gap, owner, pidx, log, top, shapes, nsh)
                if okA and match and abs(np.sqrt((tx - ax) ** 2 + (ty - ay) ** 2) - d_first) > tol:
                    top = _undo(owner, pidx, log, top, 0)
                    nsh = 0
                    okA = False
                    continue
                if okA:
                    break
            if not okA:
                continue
            if d_first < 0.0:
                d_first = np.sqrt((tx - ax) ** 2 + (ty - ay) ** 2)
            # negatives keep the first A's distance through every restart
            d = np.sqrt((tx - ax) ** 2 + (ty - ay) ** 2)
            if lab == 0 and attempt < _ATTEMPTS:
                d = d_first
            top_a = top
            nsh_a = nsh
            okB = False
            if lab == 1:
                top, nsh = _add_marker(ax, ay, 1, _BIG, s, hm, R, aa, S, owner, pidx, log, top, shapes, nsh)
                top, nsh = _add_marker(tx, ty, 1, _BIG, s, hm, R, aa, S, owner, pidx, log, top, shapes, nsh)
                mpos[0, 0] = ay
                mpos[0, 1] = ax
                mpos[1, 0] = ty
                mpos[1, 1] = tx
                mown[0] = 1
                mown[1] = 1
                top_a = top
                nsh_a = nsh
                for tb in range(_B_TRIES):
                    bx = lo + (hi - lo) * _unif(st)
                    by = lo + (hi - lo) * _unif(st)
                    th = 2.0 * np.pi * _unif(st)
                    if (bx - ax) ** 2 + (by - ay) ** 2 < seed_dist * seed_dist:
                        continue
                    okB, top, nsh, ex, ey = _grow(st, 2, bx, by, th, length, lo, hi, Lp, mg, cont, s, hp,
                                                  R, aa, S, win, gap, owner, pidx, log, top, shapes, nsh)
                    if okB:
                        break
            else:
                mown[0] = 1
                mown[1] = 2
                for tb in range(_NB_TRIES):
                    # one end e of A (start or tip) gets the first marker; B's seed, which carries
                    # the second marker, lies on the circle of radius d around e
                    if _unif(st) < 0.5:
                        exx = ax
                        eyy = ay
                    else:
                        exx = tx
                        eyy = ty
                    phi = 2.0 * np.pi * _unif(st)
                    th = 2.0 * np.pi * _unif(st)
                    bx = exx + d * np.cos(phi)
                    by = eyy + d * np.sin(phi)
                    if bx < lo or bx > hi or by < lo or by > hi:
                        continue
                    top, nsh = _add_marker(exx, eyy, 1, _BIG, s, hm, R, aa, S, owner, pidx, log, top, shapes, nsh)
                    if _shape_ok(1, bx * s, by * s, 0.0, 0.0, hm, R, aa, S, 2, 0, win, gap, owner, pidx):
                        top, nsh = _add_marker(bx, by, 2, 0, s, hm, R, aa, S, owner, pidx, log, top, shapes, nsh)
                        okB, top, nsh, ex, ey = _grow(st, 2, bx, by, th, length, lo, hi, Lp, mg, cont, s, hp,
                                                      R, aa, S, win, gap, owner, pidx, log, top, shapes, nsh)
                        if okB:
                            mpos[0, 0] = eyy
                            mpos[0, 1] = exx
                            mpos[1, 0] = by
                            mpos[1, 1] = bx
                            break
                    top = _undo(owner, pidx, log, top, top_a)
                    nsh = nsh_a
            if not okB:
                continue
            # ---- distractors (ids 3, 4, ...); one that never fits is left out
            for j in range(n_dist):
                for tj in range(_D_TRIES):
                    qx = lo + (hi - lo) * _unif(st)
                    qy = lo + (hi - lo) * _unif(st)
                    th = 2.0 * np.pi * _unif(st)
                    okD, top, nsh, ex, ey = _grow(st, 3 + j, qx, qy, th, d_len, lo, hi, Lp, mg, cont, s, hp,
                                                  R, aa, S, win, gap, owner, pidx, log, top, shapes, nsh, cross)
                    if okD:
                        break
            done = True
            attempts[i] = attempt + 1
            break
        if not done:
            labels[i] = -1
            continue
        # ---- marker order: the first marker is drawn at random between the two
        if _unif(st) < 0.5:
            for q in range(2):
                tmp = mpos[0, q]
                mpos[0, q] = mpos[1, q]
                mpos[1, q] = tmp
            tmpo = mown[0]
            mown[0] = mown[1]
            mown[1] = tmpo
        labels[i] = lab
        for m in range(2):
            markers[i, m, 0] = int(np.floor(mpos[m, 0] * S / D))
            markers[i, m, 1] = int(np.floor(mpos[m, 1] * S / D))
        # ---- render: binary raster, box-averaged to S x S
        raster[:] = 0
        for q in range(nsh):
            _rasterize(int(shapes[q, 0]), shapes[q, 1], shapes[q, 2], shapes[q, 3], shapes[q, 4],
                       shapes[q, 5], R, raster)
        a2 = aa * aa
        first = mown[0]
        for br in range(S):
            for bc in range(S):
                cnt = 0
                for dy in range(aa):
                    row = (br * aa + dy) * R + bc * aa
                    for dx in range(aa):
                        cnt += raster[row + dx]
                images[i, br, bc] = (255 * cnt + a2 // 2) // a2
                o = owner[br * S + bc]
                if want_contours:
                    contours[i, br, bc] = o
                if want_dense:
                    dense[i, br, bc] = 1 if (o == first and o != 0) else 0


# --------------------------------------------------------------------------------------------
# public generator API
# --------------------------------------------------------------------------------------------


def _get_preset(preset) -> PathfinderPreset:
    if isinstance(preset, PathfinderPreset):
        preset.validate()
        return preset
    if preset not in PRESETS:
        import difflib
        close = difflib.get_close_matches(str(preset), list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown pathfinder preset {preset!r}.{hint} Valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


def generate_pathfinder(
    n: int,
    length: int = 14,
    preset: str | PathfinderPreset = "lra32",
    seed: int = 0,
    *,
    dense: bool = False,
    return_contours: bool = False,
) -> dict:
    """Generate ``n`` PathFinder images with contour length ``length`` (paddles, >= 3).

    Returns a dict: ``images`` uint8 (n, S, S); ``labels`` int64 (n,) (1 = both markers on one
    contour), exactly ``n // 2`` positives for even ``n``; ``markers`` int64 (n, 2, 2) marker
    centres as (row, col) output pixels; with ``dense=True`` also ``dense`` uint8 (n, S, S), 1 on
    the output pixels inked by the contour (markers included) that the first marker sits on;
    with ``return_contours=True`` also ``contours`` uint8 (n, S, S), the id of the contour owning
    each inked pixel (0 = background, 1 and 2 = target contours, 3... = distractors; markers
    belong to their contour) and ``attempts`` int64 (n,), the whole-image restarts used (1 = none).
    Image ``i`` depends only on ``(seed, i)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 3:
        raise ValueError(f"length must be an int >= 3 (contour length in paddles), got {length!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    p = _get_preset(preset)
    n, length = int(n), int(length)
    S = int(p.out_size)
    R = S * int(p.antialias)
    n_dist = p.num_distractors(length)
    if n_dist + 2 > 255:
        raise ValueError(f"too many contours ({n_dist + 2}) for uint8 contour ids")
    images = np.zeros((n, S, S), np.uint8)
    labels = np.zeros(n, np.int64)
    markers = np.zeros((n, 2, 2), np.int64)
    contours = np.zeros((n if return_contours else 1, S, S), np.uint8)
    dmask = np.zeros((n if dense else 1, S, S), np.uint8)
    # bound on undo-log entries: every shape logs at most the output pixels of its bounding box
    sc = p.scale / p.antialias
    per_paddle = (int((p.paddle_length + p.paddle_thickness) * sc) + 4) ** 2
    per_marker = (int(2 * p.marker_radius * sc) + 4) ** 2
    cap = (2 * length + n_dist * p.distractor_length(length)) * per_paddle + 4 * per_marker + 64
    attempts = np.zeros(n, np.int64)
    if n:
        _generate_batch(
            n, np.uint64(int(seed) % (1 << 64)), length, n_dist, p.distractor_length(length),
            float(p.draw_size), float(p.padding), float(p.paddle_length), float(p.paddle_thickness),
            float(p.paddle_margin), float(p.marker_radius), float(p.continuity), float(p.seed_distance),
            R, int(p.antialias), S, int(p.gap), int(p.self_window), int(cap),
            images, labels, markers, contours, bool(return_contours), dmask, bool(dense), attempts,
            bool(p.crossing),
        )
        bad = np.flatnonzero(labels < 0)
        if bad.size:
            raise PathfinderGenerationError(
                f"could not place two target contours of length {length} (+ markers) on the "
                f"{p.draw_size}-unit canvas of this preset for image(s) {bad[:5].tolist()} (seed {seed}); "
                "use a shorter length or a larger canvas"
            )
    out = {"images": images, "labels": labels, "markers": markers}
    if dense:
        out["dense"] = dmask
    if return_contours:
        out["contours"] = contours
        out["attempts"] = attempts
    return out


def marker_distance(markers: np.ndarray) -> np.ndarray:
    """Euclidean distance (output pixels) between the two markers of each image, float64 (n,)."""
    m = np.asarray(markers, dtype=np.float64)
    return np.hypot(m[:, 0, 0] - m[:, 1, 0], m[:, 0, 1] - m[:, 1, 1])


def distance_only_accuracy(markers: np.ndarray, labels: np.ndarray, *, bins: int = 10, seed: int = 0) -> dict:
    """Accuracy of classifiers that see only the marker distance (the known shortcut).

    The images are split at random in half; on the first half we fit (a) the best threshold
    stump (either direction) and (b) a histogram classifier (``bins`` equal-count bins of the
    distance, majority label per bin); both are scored on the other half.  Returns
    ``{"stump": acc, "histogram": acc, "best": max}``.
    """
    d = marker_distance(markers)
    y = np.asarray(labels, dtype=np.int64)
    if d.shape[0] != y.shape[0] or y.shape[0] < 4:
        raise ValueError("need matching markers and labels for at least 4 images")
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, te = perm[: len(y) // 2], perm[len(y) // 2:]
    dtr, ytr, dte, yte = d[tr], y[tr], d[te], y[te]
    # (a) stump: predict 1 where d <= thr (or the reverse); best on train
    order = np.argsort(dtr, kind="stable")
    ds, ys = dtr[order], ytr[order]
    cpos = np.concatenate([[0], np.cumsum(ys)])            # positives among the first j
    j = np.arange(len(ys) + 1)
    acc_le = (cpos + ((len(ys) - j) - (cpos[-1] - cpos))) / len(ys)   # <= thr -> 1
    acc_gt = 1.0 - acc_le
    cand = np.concatenate([[-np.inf], ds])
    if acc_le.max() >= acc_gt.max():
        thr, pos_low = cand[int(np.argmax(acc_le))], True
    else:
        thr, pos_low = cand[int(np.argmax(acc_gt))], False
    pred = (dte <= thr) if pos_low else (dte > thr)
    stump = float((pred.astype(np.int64) == yte).mean())
    # (b) histogram classifier on equal-count bins
    edges = np.unique(np.quantile(dtr, np.linspace(0, 1, bins + 1)))
    btr = np.clip(np.searchsorted(edges, dtr, side="right") - 1, 0, len(edges) - 2)
    bte = np.clip(np.searchsorted(edges, dte, side="right") - 1, 0, len(edges) - 2)
    maj = np.zeros(max(1, len(edges) - 1), np.int64)
    for b in range(len(maj)):
        sel = ytr[btr == b]
        maj[b] = int(sel.mean() > 0.5) if sel.size else int(ytr.mean() > 0.5)
    hist = float((maj[bte] == yte).mean())
    return {"stump": stump, "histogram": hist, "best": max(stump, hist)}


# --------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------


def _check_data(data: dict, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if not isinstance(data, dict):
        raise PathfinderDataError(f"{where}: expected a dict with 'images' and 'labels', got {type(data).__name__}")
    missing = {"images", "labels"} - set(data)
    if missing:
        raise PathfinderDataError(f"{where}: missing key(s) {sorted(missing)}")
    images = np.asarray(data["images"])
    labels = np.asarray(data["labels"])
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise PathfinderDataError(f"{where}: images must be uint8 (n, S, S), got {images.dtype} {images.shape}")
    n = images.shape[0]
    if labels.shape != (n,) or labels.dtype.kind not in "iub" or (n and not np.isin(labels, (0, 1)).all()):
        raise PathfinderDataError(f"{where}: labels must be n={n} integers in {{0, 1}}, got {labels.dtype} {labels.shape}")
    markers = data.get("markers")
    if markers is not None:
        markers = np.asarray(markers)
        if markers.shape != (n, 2, 2) or markers.dtype.kind not in "iu":
            raise PathfinderDataError(f"{where}: markers must be integer (n, 2, 2), got {markers.dtype} {markers.shape}")
        markers = markers.astype(np.int64)
    dense = data.get("dense")
    if dense is not None:
        dense = np.asarray(dense)
        if dense.shape != images.shape or (dense.size and not np.isin(dense, (0, 1)).all()):
            raise PathfinderDataError(f"{where}: dense must be 0/1 of shape {images.shape}, got {dense.shape}")
        dense = dense.astype(np.uint8)
    return images, labels.astype(np.int64), markers, dense


def save_pathfinder(path, data: dict, fmt: str = "npz", *, batch_size: int = 1000, length: int | None = None) -> Path:
    """Save a generated (or loaded) dataset.

    ``fmt="npz"``: one archive (atomic write) with ``images``, ``labels`` and, when present,
    ``markers`` and ``dense``.  ``fmt="lra"``: an LRA-style folder ``path/imgs/<b>/sample_<j>.png``
    + ``path/metadata/<b>.npy`` (text lines ``imgs/<b> sample_<j>.png <j> <label> <length>
    m:<r0>,<c0>,<r1>,<c1>``, the marker field only when markers are known; image ``i`` goes to
    batch ``i // batch_size`` as ``j = i % batch_size``).
    Every file is written to a temp name and renamed into place.  Returns ``path``.
    """
    path = Path(path)
    images, labels, markers, dense = _check_data(data, "save_pathfinder")
    if fmt == "npz":
        if path.suffix != ".npz":
            raise ValueError(f"save_pathfinder: {path}: fmt='npz' needs a path ending in .npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"images": images, "labels": labels}
        if markers is not None:
            arrays["markers"] = markers
        if dense is not None:
            arrays["dense"] = dense
        _atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
        return path
    if fmt != "lra":
        raise ValueError(f"save_pathfinder: fmt must be 'npz' or 'lra', got {fmt!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from PIL import Image

    length = int(length) if length is not None else -1
    (path / "metadata").mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    for b0 in range(0, n, batch_size):
        b = b0 // batch_size
        folder = path / "imgs" / str(b)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(b0, min(n, b0 + batch_size)):
            j = i - b0
            name = f"sample_{j}.png"
            img = Image.fromarray(images[i], mode="L")
            _atomic_write(folder / name, lambda f, im=img: im.save(f, format="PNG"), fsync=False)
            line = f"imgs/{b} {name} {j} {int(labels[i])} {length}"
            if markers is not None:
                line += " m:" + ",".join(str(int(v)) for v in markers[i].ravel())
            lines.append(line)
        text = ("\n".join(lines) + "\n").encode()
        _atomic_write(path / "metadata" / f"{b}.npy", lambda f, t=text: f.write(t))
    return path


def _batch_key(p: Path):
    return (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)


def _load_lra(path: Path) -> dict:
    from PIL import Image, UnidentifiedImageError

    meta = path / "metadata"
    if not meta.is_dir():
        raise PathfinderDataError(f"{meta}: missing metadata folder (expected an LRA-style folder with imgs/ and metadata/)")
    files = sorted((p for p in meta.iterdir() if p.is_file() and p.suffix == ".npy"), key=_batch_key)
    if not files:
        raise PathfinderDataError(f"{meta}: no metadata/<batch>.npy files")
    images, labels, markers, names = [], [], [], []
    have_markers = True
    size = None
    for mf in files:
        try:
            text = mf.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PathfinderDataError(f"{mf}: unreadable metadata (expected text lines; {type(exc).__name__}: {exc})") from None
        for ln, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            f = line.split()
            if len(f) < 4:
                raise PathfinderDataError(f"{mf}, line {ln}: expected >= 4 whitespace-separated fields, got {line!r}")
            try:
                lab = int(float(f[3]))
            except ValueError:
                raise PathfinderDataError(f"{mf}, line {ln}: label (4th field) is not a number: {f[3]!r}") from None
            if lab not in (0, 1):
                raise PathfinderDataError(f"{mf}, line {ln}: label (4th field) must be 0 or 1, got {f[3]!r}")
            img_file = path / f[0] / f[1]
            if not img_file.is_file():
                raise PathfinderDataError(f"{img_file}: missing image (listed in {mf}, line {ln})")
            try:
                with Image.open(img_file) as im:
                    im.load()
                    if im.mode != "L":
                        im = im.convert("L")
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                    Image.DecompressionBombError) as exc:        # a decompression bomb is no OSError
                raise PathfinderDataError(f"{img_file}: corrupt or unreadable image ({type(exc).__name__}: {exc})") from None
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
                raise PathfinderDataError(f"{img_file}: expected a square grayscale image, got shape {arr.shape}")
            if size is None:
                size = arr.shape
            elif arr.shape != size:
                raise PathfinderDataError(f"{img_file}: size {arr.shape} differs from the first image's {size}")
            m = None
            tag = [v for v in f[4:] if v.startswith("m:")]
            if tag:
                try:
                    m = [int(v) for v in tag[0][2:].split(",")]
                except ValueError:
                    m = None
                if m is None or len(m) != 4 or min(m) < 0:
                    raise PathfinderDataError(f"{mf}, line {ln}: malformed marker field {tag[0]!r} (expected m:r0,c0,r1,c1)")
            else:
                have_markers = False
            markers.append(m)
            images.append(arr)
            labels.append(lab)
            names.append(f"{f[0]}/{f[1]}")
    if not images:
        raise PathfinderDataError(f"{meta}: metadata lists no images")
    out = {"images": np.stack(images), "labels": np.asarray(labels, np.int64), "files": names}
    if have_markers:
        mk = np.asarray(markers, np.int64).reshape(-1, 2, 2)
        if (mk >= size[0]).any():
            raise PathfinderDataError(f"{path}: marker coordinates outside the {size[0]}-pixel images")
        out["markers"] = mk
    return out


def load_pathfinder(path) -> dict:
    """Load a ``.npz`` written by :func:`save_pathfinder` or an LRA-style folder
    (``imgs/`` + ``metadata/``; also LRA's own ``pathfinder32/<difficulty>`` folders).

    Returns ``images`` uint8 (n, S, S), ``labels`` int64 and, when stored, ``markers`` and
    ``dense``; folders add ``files`` (relative image paths).  Missing or corrupt files, images or
    metadata lines raise :class:`PathfinderDataError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        return _load_lra(path)
    if not path.exists():
        raise PathfinderDataError(f"{path}: not found (expected a .npz file or an LRA-style folder)")
    if path.suffix != ".npz":
        raise PathfinderDataError(f"{path}: unknown format (expected a .npz file or an LRA-style folder)")
    check_npz_file(path, PathfinderDataError)   # declared sizes vs the archive and the cap, before allocating
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, truncated archive, garbage bytes
        raise PathfinderDataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise PathfinderDataError(f"{path}: expected a .npz archive, found a single .npy array")
    with z:
        missing = {"images", "labels"} - set(z.files)
        if missing:
            raise PathfinderDataError(f"{path}: .npz lacks key(s) {sorted(missing)} (found {sorted(z.files)})")
        try:
            data = {k: z[k] for k in z.files if k in ("images", "labels", "markers", "dense")}
        except Exception as exc:  # truncated/corrupt member, CRC error, pickled member
            raise PathfinderDataError(f"{path}: a member of the .npz archive is unreadable ({type(exc).__name__}: {exc})") from None
    images, labels, markers, dense = _check_data(data, str(path))
    out = {"images": images, "labels": labels}
    if markers is not None:
        out["markers"] = markers
    if dense is not None:
        out["dense"] = dense
    return out
