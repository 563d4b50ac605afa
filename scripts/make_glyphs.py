"""Render the glyph atlas the clutter generator draws from (``src/convrnn/tasks/glyphs.npz``).

Digits 0-9 in Pillow's built-in scalable font (``ImageFont.load_default(size)``, Pillow >= 10.1) at
three stroke widths, each cropped to its ink and scaled (aspect kept) so its height fills
``ink`` of a ``box`` x ``box`` square, centred by its bounding box, at two resolutions (``glyphs24``:
box 24, ink 20 for canvases up to ~40 px; ``glyphs48``: box 48, ink 40 above), so the generator never
minifies a glyph by much more than 1.3x (bilinear sampling aliases thin strokes below that).  Stored as
uint8 coverage ``(variants, classes, box, box)``.  The atlas ships with the package so that a generated image
depends on (seed, index) only, not on the installed Pillow/FreeType version.

    python scripts/make_glyphs.py            # rewrites src/convrnn/tasks/glyphs.npz
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RENDER = 160
SIZES = ((24, 20), (48, 40))   # (box, ink)
STROKES = (0, 3, 6)          # at the 160 px render size: regular, bold, heavy
CLASSES = "0123456789"


def render(ch: str, stroke: int, BOX: int, INK: int) -> np.ndarray:
    font = ImageFont.load_default(size=RENDER)
    im = Image.new("L", (2 * RENDER, 2 * RENDER), 0)
    ImageDraw.Draw(im).text((RENDER // 2, RENDER // 4), ch, fill=255, font=font, stroke_width=stroke,
                            stroke_fill=255)
    a = np.asarray(im)
    ys, xs = np.nonzero(a > 127)
    crop = im.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    h, w = crop.height, crop.width
    scale = INK / h
    nw, nh = max(1, round(w * scale)), INK
    if nw > INK:                                   # wide glyphs fit the box too
        scale = INK / w
        nw, nh = INK, max(1, round(h * scale))
    small = crop.resize((nw, nh), Image.Resampling.LANCZOS)
    out = Image.new("L", (BOX, BOX), 0)
    out.paste(small, ((BOX - nw) // 2, (BOX - nh) // 2))
    return np.asarray(out, dtype=np.uint8)


def main(path=Path(__file__).resolve().parents[1] / "src" / "convrnn" / "tasks" / "glyphs.npz"):
    atlases = {f"glyphs{box}": np.stack([np.stack([render(c, s, box, ink) for c in CLASSES]) for s in STROKES])
               for box, ink in SIZES}
    np.savez_compressed(path, **atlases, ink=np.array([ink for _, ink in SIZES]), classes=np.array(list(CLASSES)),
                        strokes=np.array(STROKES))
    print(f"wrote {path}: {', '.join(f'{k} {a.shape}' for k, a in atlases.items())}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
