"""U-Net baseline for MRI reconstruction, with the widths of the fastMRI baseline.

Architecture (Ronneberger et al. 2015, as configured in the fastMRI baseline, Zbontar et al. 2018,
arXiv 1811.08839): ``num_pools`` down levels, each a double conv block followed by 2x2 average
pooling, channels ``chans, 2 chans, 4 chans, ...``; a bottleneck block; ``num_pools`` up levels,
each a 2x2 stride-2 transposed convolution (+ instance norm + LeakyReLU) halving the channels,
concatenation with the skip connection and a double conv block; a final 1x1 convolution::

    block(c_in, c_out) = [conv3x3(no bias) -> InstanceNorm -> LeakyReLU(0.2) -> Dropout2d(p)] x 2

Defaults are fastMRI's: ``chans=32``, ``num_pools=4``, ``drop_prob=0.0``.  Input: the zero-filled
magnitude image ``(B, 1, H, W)`` (see :func:`zero_filled_magnitude`), output the reconstruction
``(B, 1, H, W)``.  Images whose sides are not multiples of ``2**num_pools`` are padded
(reflection where possible) and the output cropped back.  With ``normalize=True`` (default) each
input is standardised by its own mean and std and the output mapped back by the same affine map,
as the fastMRI data transform does outside the model.  Written from the description, not from
fastMRI's code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DictConfig, check_image, check_keys, check_number, check_positive_int
from ..registry import register_architecture, register_model
from ..mri.fft import ifft2c, rss

__all__ = ["UNet", "UNetConfig", "unet_mri", "zero_filled_magnitude"]


def zero_filled_magnitude(kspace_masked: torch.Tensor) -> torch.Tensor:
    """``(B, 2C, H, W)`` masked k-space (channel layout) -> ``(B, 1, H, W)`` RSS of the zero-filled image."""
    return rss(ifft2c(kspace_masked), dim=1).unsqueeze(1)


def _block(cin: int, cout: int, drop: float) -> nn.Sequential:
    layers = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout),
                   nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(drop)]
    return nn.Sequential(*layers)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False)
        self.norm = nn.InstanceNorm2d(cout)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.up(x)), 0.2)


@dataclass
class UNetConfig(DictConfig):
    """The U-Net's constructor arguments (kept on ``model.config`` so checkpoints can rebuild it)."""

    _what = "unet_mri config"

    in_chans: int = 1
    out_chans: int = 1
    chans: int = 32
    num_pools: int = 4
    drop_prob: float = 0.0
    normalize: bool = True


class UNet(nn.Module):
    @classmethod
    def from_config(cls, config: UNetConfig) -> "UNet":
        return cls(**config.to_dict())

    def __init__(self, in_chans: int = 1, out_chans: int = 1, chans: int = 32, num_pools: int = 4,
                 drop_prob: float = 0.0, normalize: bool = True):
        super().__init__()
        for name, v in (("in_chans", in_chans), ("out_chans", out_chans), ("chans", chans), ("num_pools", num_pools)):
            check_positive_int(f"unet_mri: {name}", v)
        check_number("unet_mri: drop_prob", drop_prob, 0, 1, max_open=True)
        self.in_chans, self.out_chans, self.num_pools, self.normalize = in_chans, out_chans, num_pools, normalize
        self.config = UNetConfig(in_chans, out_chans, chans, num_pools, float(drop_prob), bool(normalize))
        self.down = nn.ModuleList()
        c = chans
        self.down.append(_block(in_chans, c, drop_prob))
        for _ in range(num_pools - 1):
            self.down.append(_block(c, 2 * c, drop_prob))
            c *= 2
        self.bottom = _block(c, 2 * c, drop_prob)
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        c *= 2
        for _ in range(num_pools):
            self.ups.append(_Up(c, c // 2))
            self.up_blocks.append(_block(c, c // 2, drop_prob))
            c //= 2
        self.head = nn.Conv2d(c, out_chans, 1)

    def recurrent_parameters(self):
        """None: the U-Net is not recurrent (an empty iterator, for the common model contract)."""
        return iter(())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image, self.in_chans, "unet_mri input")
        H, W = image.shape[-2:]
        if self.normalize:
            mean = image.mean(dim=(1, 2, 3), keepdim=True)
            std = image.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-11)
            image = (image - mean) / std
        m = 2 ** self.num_pools
        ph, pw = (-H) % m, (-W) % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            image = F.pad(image, pad, mode=mode)
        x, skips = image, []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.bottom(x)
        for up, block in zip(self.ups, self.up_blocks):
            x = block(torch.cat([up(x), skips.pop()], 1))
        x = self.head(x)[..., pad[2]:pad[2] + H, pad[0]:pad[0] + W]
        if self.normalize:
            x = x * std + mean
        return x

    def reconstruct(self, kspace_masked: torch.Tensor, mask=None, steps=None, *, forward=None) -> torch.Tensor:
        """The MRI task's entry point: magnitude ``(B, H, W)`` from masked k-space ``(B, 2C, H, W)``
        (``mask`` unused: the input is the zero-filled RSS magnitude, :func:`zero_filled_magnitude`).
        ``steps`` must be None (the U-Net has no iterations); ``forward``: the callable that runs this
        model (default ``self``; the task passes a DistributedDataParallel wrapper)."""
        if steps is not None:
            raise ValueError("mri: iterations (steps=) apply to pcrnn models only")
        return (self if forward is None else forward)(zero_filled_magnitude(kspace_masked)).squeeze(1)


register_architecture(UNet, UNetConfig, UNet.from_config)      # checkpoints rebuild it (convrnn.checkpoint.load_model)


@register_model("unet_mri")
def unet_mri(**overrides) -> UNet:
    """fastMRI-width U-Net baseline (``chans=32, num_pools=4, drop_prob=0.0``); keyword overrides
    ``in_chans, out_chans, chans, num_pools, drop_prob, normalize``; unknown keys raise ValueError."""
    check_keys("unet_mri config", overrides, ["in_chans", "out_chans", "chans", "num_pools", "drop_prob", "normalize"])
    return UNet(**overrides)
