"""Write scikit-learn's 1,797 handwritten 8x8 digits (another source than our glyph generator: handwriting, not
a font) in the clutter ``.npz`` format, optionally cluttered, to test clutter-trained models on data we did
not draw.

Each digit is upsampled (bilinear) to ``ink`` px (default 0.55 x size, the generator's glyph height) and
centred on a ``size`` px canvas; ``--noise`` adds Gaussian pixel noise.

    python scripts/digits_as_clutter.py --out digits32.npz
    convrnn eval runs/cells_clutter/runs/gru/seed0 --task clutter --data digits32.npz --levels 0 --n 1797
"""
from __future__ import annotations

import argparse

import numpy as np


def digits_canvas(size: int = 32, ink: int | None = None, noise: float = 0.0, seed: int = 0):
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    ink = ink or round(0.55 * size)
    small = F.interpolate(x, size=(ink, ink), mode="bilinear", align_corners=False).clamp(0, 1)
    out = torch.zeros(len(x), 1, size, size)
    o = (size - ink) // 2
    out[:, :, o:o + ink, o:o + ink] = small
    if noise:
        g = torch.Generator().manual_seed(seed)
        out = (out + noise * torch.randn(out.shape, generator=g)).clamp(0, 1)
    return (out * 255 + 0.5).to(torch.uint8).numpy(), d.target.astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--ink", type=int, default=None)
    ap.add_argument("--noise", type=float, default=0.0)
    a = ap.parse_args()
    images, labels = digits_canvas(a.size, a.ink, a.noise)
    np.savez_compressed(a.out, images=images, labels=labels, classes=np.array(list("0123456789")))
    print(f"wrote {len(labels)} digits ({a.size} px) to {a.out}")


if __name__ == "__main__":
    main()
