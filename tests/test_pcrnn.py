"""Tests for PC-RNN (models/pcrnn.py), the MRI U-Net baseline (models/unet.py) and the fastMRI-style
metrics and losses of tasks/mri.py."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import convrnn
from convrnn.models import pcrnn as pcrnn_mod  # noqa: F401  (registers "pcrnn")
from convrnn.models import unet as unet_mod  # noqa: F401  (registers "unet_mri")
from convrnn.models.pcrnn import PCRNN, PCRNNOutput
from convrnn.models.unet import zero_filled_magnitude
from convrnn.tasks.mri import (
    apply_mask,
    center_crop,
    complex_to_channels,
    fft2c,
    make_mask,
    nmse,
    nmse_ssim_loss,
    psnr,
    rss,
    ssim,
    ssim_loss,
)

TINY = dict(width=4, final_width=4, iterations=(2, 2, 2))


def _kspace(B, coils, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.complex(torch.randn(B, coils, H, W, generator=g), torch.randn(B, coils, H, W, generator=g))
    k = complex_to_channels(fft2c(img)).flatten(1, 2)          # (B, 2C, H, W)
    mask = make_mask("4x", W, seed)
    return apply_mask(k, mask), mask


# ---------------------------------------------------------------------------------------------
# PC-RNN
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("coils,H,W", [(1, 32, 32), (4, 32, 32), (2, 30, 27)])
def test_pcrnn_shapes(coils, H, W):
    model = convrnn.create_model("pcrnn", coils=coils, **TINY)
    km, mask = _kspace(2, coils, H, W)
    out = model(km, mask.reshape(1, 1, 1, W))
    assert isinstance(out, PCRNNOutput)
    assert out.image.shape == (2, 2 * coils, H, W)
    assert out.magnitude().shape == (2, H, W)
    assert len(out.module_outputs) == 3 and all(o.shape == out.image.shape for o in out.module_outputs)
    assert out.intermediates is None and out.scales == (4, 2, 1)
    # magnitude is the RSS over coils of the complex images
    z = torch.complex(out.image[:, 0::2], out.image[:, 1::2])
    torch.testing.assert_close(out.magnitude(), z.abs().square().sum(1).sqrt())


@pytest.mark.parametrize("coils", [1, 3])
def test_pcrnn_keeps_measured_kspace(coils):
    model = convrnn.create_model("pcrnn", coils=coils, **TINY)
    km, mask = _kspace(2, coils, 32, 32, seed=3)
    km = km * 1e-4     # fastMRI-like scale: the internal normalisation must not break consistency
    mask_b = mask.reshape(1, 1, 1, -1).expand(2, 1, 1, -1)
    out = model(km, mask_b, return_intermediates=True)
    m = mask.bool()
    scale = km.abs().max()
    for img in [out.image, *out.module_outputs, *[x for xs in out.intermediates for x in xs]]:
        k_out = fft2c(img)
        err = (k_out[..., m] - km[..., m]).abs().max()
        assert err <= 1e-5 * scale
    # the unmeasured lines are the network's own (not zero)
    assert fft2c(out.image)[..., ~m].abs().max() > 0


def test_pcrnn_iterations_at_call_time():
    model = convrnn.create_model("pcrnn", **TINY)
    km, mask = _kspace(1, 1, 32, 32)
    out = model(km, mask, return_intermediates=True)
    assert [len(x) for x in out.intermediates] == [2, 2, 2]
    for its in [(1, 3, 2), (4, 1, 1), (0, 2, 5)]:
        out = model(km, mask, iterations=its, return_intermediates=True)
        assert [len(x) for x in out.intermediates] == list(its)
        assert sum(len(x) for x in out.intermediates) == sum(its)
        mags = out.intermediate_magnitudes()
        assert all(m is None if t == 0 else m.shape == (t, 1, 32, 32) for m, t in zip(mags, its))
    assert [len(x) for x in model(km, mask, iterations=3, return_intermediates=True).intermediates] == [3, 3, 3]
    # the last intermediate of each module is that module's output
    out = model(km, mask, iterations=(1, 2, 3), return_intermediates=True)
    for xs, o in zip(out.intermediates, out.module_outputs):
        torch.testing.assert_close(xs[-1], o)
    # construction-time default
    m2 = convrnn.create_model("pcrnn", width=4, final_width=4, iterations=(1, 1, 3))
    assert [len(x) for x in m2(km, mask, return_intermediates=True).intermediates] == [1, 1, 3]
    with pytest.raises(ValueError, match="iterations"):
        model(km, mask, iterations=(1, 2))
    with pytest.raises(ValueError, match="iterations"):
        model(km, mask, iterations=(1, -1, 2))


@pytest.mark.parametrize("cell", ["convgru", "convlstm", "residual"])
def test_pcrnn_library_cells(cell):
    model = convrnn.create_model("pcrnn", cell=cell, **TINY)
    assert all(type(lv.cell) is convrnn.registry.get_cell_class(cell) for lv in model.levels)
    km, mask = _kspace(2, 1, 32, 32)
    out = model(km, mask, iterations=(1, 2, 1))
    assert out.image.shape == (2, 2, 32, 32) and torch.isfinite(out.image).all()
    out.magnitude().mean().backward()


def test_pcrnn_gradients_reach_all_modules():
    model = convrnn.create_model("pcrnn", **TINY)
    km, mask = _kspace(2, 1, 32, 32)
    model(km, mask).magnitude().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for level in model.levels:
        assert any(p.grad.abs().sum() > 0 for p in level.enc.parameters())


def test_pcrnn_config_errors():
    with pytest.raises(ValueError, match="widht"):
        convrnn.create_model("pcrnn", widht=8)
    with pytest.raises(ValueError, match="cell"):
        convrnn.create_model("pcrnn", cell="nosuchcell")
    with pytest.raises(ValueError, match="additive"):
        convrnn.create_model("pcrnn", cell_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match="scales"):
        convrnn.create_model("pcrnn", scales=(3, 1))
    model = PCRNN(coils=2, **TINY)
    km, mask = _kspace(1, 1, 32, 32)
    with pytest.raises(ValueError, match="4 channels"):
        model(km, mask)
    # two scales: two modules and two iteration counts
    m2 = convrnn.create_model("pcrnn", scales=(2, 1), width=4, final_width=4, iterations=(1, 1))
    assert len(m2(km, mask, return_intermediates=True).intermediates) == 2


def test_pcrnn_overfits_two_phantom_slices(tmp_path):
    pytest.importorskip("h5py")
    from convrnn.tasks.mri import MRISliceDataset, write_phantom_volumes

    write_phantom_volumes(tmp_path, 1, slices=2, size=32, seed=0)
    ds = MRISliceDataset(tmp_path, mask=("4x", 0))
    items = [ds[i] for i in range(len(ds))]
    km = torch.stack([it["kspace_masked"] for it in items])
    mask = torch.stack([it["mask"] for it in items])               # (B, 1, 1, W)
    target = torch.stack([it["target"] for it in items])            # (B, H, W)
    zf = nmse(target, rss(torch.stack([it["zero_filled"] for it in items]), dim=1))

    torch.manual_seed(0)
    model = convrnn.create_model("pcrnn", width=8, final_width=8, iterations=(2, 2, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for _ in range(40):
        opt.zero_grad()
        loss = nmse_ssim_loss(model(km, mask).magnitude(), target, alpha=0.0)
        loss.backward()
        opt.step()
    with torch.no_grad():
        got = nmse(target, model(km, mask).magnitude())
    assert time.perf_counter() - t0 < 15
    assert got < 0.5 * zf, (got, zf)   # typically ~0.1 of zero-filled after 40 steps


# ---------------------------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("H,W", [(32, 32), (17, 23), (31, 40)])
def test_unet_shapes(H, W):
    model = convrnn.create_model("unet_mri", chans=4)
    x = torch.rand(2, 1, H, W)
    y = model(x)
    assert y.shape == (2, 1, H, W) and torch.isfinite(y).all()
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_defaults_and_input():
    model = convrnn.create_model("unet_mri")
    assert model.down[0][0].out_channels == 32 and model.num_pools == 4
    assert model.bottom[0].out_channels == 512
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout2d))
    with pytest.raises(ValueError, match="chan"):
        convrnn.create_model("unet_mri", chan=8)
    km, _ = _kspace(2, 3, 16, 16)
    zf = zero_filled_magnitude(km)
    assert zf.shape == (2, 1, 16, 16)
    z = torch.complex(km[:, 0::2], km[:, 1::2])
    from convrnn.tasks.mri import ifft2c
    torch.testing.assert_close(zf[:, 0], ifft2c(z).abs().square().sum(1).sqrt())


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------

def _ssim_literal(gt, pred, maxval):
    """Slow reference: loop over slices and every 7x7 window inside the slice."""
    C1, C2 = (0.01 * maxval) ** 2, (0.03 * maxval) ** 2
    per_slice = []
    for g, p in zip(gt, pred):
        vals = []
        for i in range(g.shape[0] - 6):
            for j in range(g.shape[1] - 6):
                a, b = g[i:i + 7, j:j + 7].ravel(), p[i:i + 7, j:j + 7].ravel()
                ma, mb = a.mean(), b.mean()
                va, vb = a.var(ddof=1), b.var(ddof=1)
                cab = ((a - ma) * (b - mb)).sum() / (a.size - 1)
                vals.append((2 * ma * mb + C1) * (2 * cab + C2) / ((ma**2 + mb**2 + C1) * (va + vb + C2)))
        per_slice.append(np.mean(vals))
    return float(np.mean(per_slice))


def _volumes(shape=(3, 12, 10), seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape) * 2.0
    pred = gt + 0.2 * rng.standard_normal(shape)
    return gt, pred


def test_nmse_psnr_literal():
    gt, pred = _volumes()
    assert nmse(gt, pred) == pytest.approx(((gt - pred) ** 2).sum() / (gt**2).sum(), rel=1e-12)
    assert nmse(gt, gt) == 0.0
    assert psnr(gt, gt) == math.inf
    mse = ((gt - pred) ** 2).mean()
    assert psnr(gt, pred) == pytest.approx(10 * math.log10(gt.max() ** 2 / mse), rel=1e-12)
    assert psnr(gt, pred, maxval=1.0) == pytest.approx(-10 * math.log10(mse), rel=1e-12)
    # a known noise level: constant error 0.01 on a volume with max 1 -> 40 dB
    g = np.zeros((2, 8, 8))
    g[0, 0, 0] = 1.0
    assert psnr(g, g + 0.01) == pytest.approx(40.0, abs=1e-9)
    # torch tensors are accepted
    assert nmse(torch.from_numpy(gt), torch.from_numpy(pred)) == pytest.approx(nmse(gt, pred))


def test_ssim_matches_literal_loop():
    gt, pred = _volumes()
    assert ssim(gt, pred) == pytest.approx(_ssim_literal(gt, pred, gt.max()), rel=1e-10)
    assert ssim(gt, pred, maxval=5.0) == pytest.approx(_ssim_literal(gt, pred, 5.0), rel=1e-10)
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert ssim(gt, pred) < 1.0


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    gt, pred = _volumes((2, 20, 24), seed=1)
    ref = np.mean([metrics.structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert ssim(gt, pred) == pytest.approx(ref, rel=1e-7)


def test_ssim_loss_matches_numpy_and_has_gradients():
    gt, pred = _volumes((3, 12, 10), seed=2)
    t, p = torch.from_numpy(gt), torch.from_numpy(pred).requires_grad_(True)
    # one data range for all images (numpy's convention: the volume max)
    loss = ssim_loss(p, t, data_range=float(gt.max()))
    assert loss.item() == pytest.approx(1 - ssim(gt, pred), rel=1e-9)
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    x = torch.rand(2, 1, 16, 16)
    assert ssim_loss(x, x).abs().item() < 1e-6
    assert nmse_ssim_loss(x, x, alpha=0.5).abs().item() < 1e-6
    # per-image default range, (B, H, W) input
    y = torch.rand(2, 16, 16, requires_grad=True)
    out = nmse_ssim_loss(y, x[:, 0], alpha=0.3)
    out.backward()
    assert out.item() > 0 and y.grad.abs().sum() > 0


def test_center_crop():
    x = np.arange(7 * 9).reshape(7, 9)
    np.testing.assert_array_equal(center_crop(x, (3, 4)), x[2:5, 2:6])
    t = torch.arange(2 * 6 * 6).reshape(2, 6, 6)
    assert torch.equal(center_crop(t, 4), t[:, 1:5, 1:5])
    with pytest.raises(ValueError):
        center_crop(x, (8, 4))
