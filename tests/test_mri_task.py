"""MRI reconstruction through the library's trainer and CLI (convrnn.tasks.mri_recon): masks drawn per
step, checkpoints of PC-RNN and U-Net, volume-wise evaluation against fastMRI's conventions (cross-checked
with scikit-image), the compressed-sensing baseline (sigpy), and the CLI train -> eval round trip."""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")

import convrnn  # noqa: E402
from convrnn.checkpoint import load_model, save_model  # noqa: E402
from convrnn.config import TrainConfig  # noqa: E402
from convrnn.tasks import get_task  # noqa: E402
from convrnn.tasks.mri import (MRIDataError, complex_to_channels, make_mask, nmse, phantom_volume, psnr, read_volume,  # noqa: E402
                               rss, ssim, write_phantom_volumes, zero_filled)
from convrnn.tasks.mri_recon import (_phantom_set, cs_reconstruct, evaluate_reconstruction, load_slices,  # noqa: E402
                                     reconstruct)

from helpers import run_cli, run_cli_killed  # noqa: E402

TINY_PC = dict(width=4, final_width=4, iterations=(1, 1, 2))


def test_phantom_volume_is_what_write_phantom_volumes_stores(tmp_path):
    write_phantom_volumes(tmp_path, 2, slices=3, size=16, seed=7)
    k, t = phantom_volume(7, 1, 3, 16)
    vol = read_volume(tmp_path / "phantom_0001.h5")
    assert np.array_equal(vol["kspace"], k) and np.array_equal(vol["reconstruction_esc"], t)


def test_task_masks_deterministic_and_mixed():
    task = get_task("mri", accelerations=["4x", "8x"])
    a, b = task.masks(64, 64, [0, 5]), task.masks(64, 64, [0, 5])
    assert torch.equal(a, b) and a.shape == (64, 1, 1, 64)
    assert not torch.equal(a, task.masks(64, 64, [0, 6]))
    lines = a.sum(dim=(1, 2, 3))
    # a 4x mask of 64 columns samples 16 lines in expectation, an 8x mask 8: both kinds occur
    assert (lines > 12).any() and (lines < 12).any()
    fixed = task.masks(4, 64, [1, 2], fixed=True)
    for i, acc in enumerate(["4x", "8x", "4x", "8x"]):
        assert torch.equal(fixed[i, 0, 0], make_mask(acc, 64, [1, 2, i]))
    # a data-parallel process holding samples 2..3 of the batch draws what one process would
    assert torch.equal(task.masks(2, 64, [0, 5], offset=2), a[2:4])
    with pytest.raises(ValueError, match="accelerations"):
        get_task("mri", accelerations=["3x"])
    with pytest.raises(ValueError, match="mask_kind"):
        get_task("mri", mask_kind="radial")


def test_task_loss_is_nmse_ssim_of_the_cropped_reconstruction():
    torch.manual_seed(0)
    model = convrnn.create_model("pcrnn", **TINY_PC)
    x, y = _phantom_set(2, 0, 16, 2, 0)
    cfg = TrainConfig.from_dict({"task": "mri", "seed": 3})
    task = get_task("mri")
    mask = task.masks(2, 16, [3, 11])
    pred = reconstruct(model, x * mask, mask)
    want = ((pred - y).square().sum((1, 2)) / y.square().sum((1, 2))).mean()
    from convrnn.tasks.mri import ssim_loss
    want = want + ssim_loss(pred, y)
    assert torch.allclose(task.loss(model, x, y, cfg, 11), want, rtol=1e-5)


def test_pcrnn_and_unet_checkpoints_round_trip(tmp_path):
    for name, kw in (("pcrnn", TINY_PC), ("unet_mri", dict(chans=4, num_pools=2))):
        m = convrnn.create_model(name, **kw)
        save_model(tmp_path / f"{name}.safetensors", m)
        m2 = load_model(tmp_path / f"{name}.safetensors")
        assert type(m2) is type(m) and m2.config == m.config
        for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)


def test_metrics_match_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    gt = rng.random((3, 24, 20)).astype(np.float32) * 2
    pred = (gt + 0.2 * rng.standard_normal(gt.shape)).astype(np.float32)
    L = float(gt.max())
    ref_ssim = np.mean([skm.structural_similarity(g, p, data_range=L, win_size=7, gaussian_weights=False,
                                                  use_sample_covariance=True) for g, p in zip(gt, pred)])
    assert ssim(gt, pred) == pytest.approx(ref_ssim, abs=1e-6)
    assert psnr(gt, pred) == pytest.approx(skm.peak_signal_noise_ratio(gt, pred, data_range=L), abs=1e-4)
    ref_nmse = skm.normalized_root_mse(gt, pred, normalization="euclidean") ** 2
    assert nmse(gt, pred) == pytest.approx(ref_nmse, rel=1e-5)


def test_cs_baseline_uses_our_fft_convention_and_beats_zero_filled():
    pytest.importorskip("sigpy")
    import sigpy.mri
    img = np.random.default_rng(1).standard_normal((1, 16, 12)) + 1j
    from convrnn.tasks.mri import fft2c
    sense = sigpy.mri.linop.Sense(np.ones_like(img))
    assert np.allclose(sense * img[0], fft2c(torch.from_numpy(img)).numpy(), atol=1e-10)
    k, t = phantom_volume(5, 0, 1, 32)
    kc = complex_to_channels(torch.from_numpy(k)).flatten(0, 1)
    m = make_mask("4x", 32, 3)
    zf = rss(zero_filled(kc * m), dim=0)
    # lambda = 0: the least-squares solution from zero is the zero-filled image
    assert torch.allclose(cs_reconstruct(kc * m, m, 0.0), zf, atol=1e-4 * float(zf.max()))
    cs = cs_reconstruct(kc * m, m, 0.003)
    assert ssim(t[0], cs.numpy()) > ssim(t[0], zf.numpy()) + 0.02


def test_load_slices_refuses_test_files_and_skips_other_shapes(tmp_path):
    write_phantom_volumes(tmp_path / "a", 2, slices=2, size=16, seed=0)
    write_phantom_volumes(tmp_path / "b", 1, slices=2, size=(16, 20), seed=1)
    (tmp_path / "a" / "phantom_0005.h5").write_bytes((tmp_path / "b" / "phantom_0000.h5").read_bytes())
    x, y = load_slices(tmp_path / "a", 100)
    assert x.shape == (4, 2, 16, 16) and y.shape == (4, 16, 16)
    assert load_slices(tmp_path / "a", 3)[0].shape[0] == 3
    write_phantom_volumes(tmp_path / "t", 1, slices=2, size=16, undersample="4x")
    with pytest.raises(MRIDataError, match="undersampled"):
        load_slices(tmp_path / "t", 10)


def test_evaluation_is_volume_wise(tmp_path):
    data = tmp_path / "test"
    write_phantom_volumes(data, 2, slices=3, size=16, seed=9)
    torch.manual_seed(0)
    model = convrnn.create_model("pcrnn", **TINY_PC)
    res = evaluate_reconstruction({"pc": model}, data, ["4x"], seed=4, iterations=[1, 2], progress=False)
    r = res["accelerations"]["4x"]
    from convrnn.tasks.mri import MRISliceDataset
    ds = MRISliceDataset(data, mask=("4x", 4))
    for v, fname in enumerate(["phantom_0000.h5", "phantom_0001.h5"]):
        items = [ds[i] for i in range(len(ds)) if ds[i]["fname"] == fname]
        gt = torch.stack([it["target"] for it in items])
        zf = torch.stack([rss(zero_filled(it["kspace_masked"]), dim=0) for it in items])
        assert r["methods"]["zero_filled"]["per_volume"][v]["ssim"] == pytest.approx(ssim(gt, zf))
        assert r["methods"]["zero_filled"]["per_volume"][v]["nmse"] == pytest.approx(nmse(gt, zf))
        with torch.no_grad():
            pc = model(torch.stack([it["kspace_masked"] for it in items]),
                       torch.stack([it["mask"] for it in items])).magnitude()
        assert r["methods"]["pc"]["per_volume"][v]["psnr"] == pytest.approx(psnr(gt, pc), abs=1e-4)
    vals = [d["ssim"] for d in r["methods"]["pc"]["per_volume"]]
    assert r["methods"]["pc"]["ssim"] == pytest.approx(np.mean(vals))
    assert r["methods"]["pc"]["ssim_sd"] == pytest.approx(np.std(vals, ddof=1))
    assert set(r["iterations"]["pc"]) == {"1", "2"}


def test_cli_train_and_eval_mri(tmp_path):
    common = ["n_train=16", "n_val=4", "epochs=2", "batch_size=4", "num_threads=1", "data_kwargs.size=16",
              "data_kwargs.slices=4", "lr=0.003"]
    r = run_cli(["train", "mri_pcrnn_cpu", *common, "model_kwargs.width=4", "model_kwargs.iterations=[1,1,2]",
                 f"out_dir={tmp_path / 'pc'}", "--no-progress"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    r = run_cli(["train", "mri_unet_cpu", *common, "model_kwargs.chans=4", "model_kwargs.num_pools=2",
                 f"out_dir={tmp_path / 'un'}", "--no-progress"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "pc" / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == "8" and 0 < float(rows[-1].split(",")[4]) <= 1      # val SSIM in (0, 1]
    r = run_cli(["eval", str(tmp_path / "pc"), str(tmp_path / "un"), "--task", "mri", "--n", "1",
                 "--iterations", "1,2", "--out", str(tmp_path / "ev"), "--no-progress"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert set(res["accelerations"]) == {"4x", "8x"}
    assert set(res["accelerations"]["8x"]["methods"]) == {"zero_filled", "pc", "un"}
    assert res["models"]["pc"]["architecture"] == "PCRNN" and res["models"]["un"]["architecture"] == "UNet"
    for f in ("report.md", "reconstructions.png", "quality_vs_iterations.png", "pc_iterations_4x.png"):
        assert (tmp_path / "ev" / f).stat().st_size > 0
    assert "| 4x | pc |" in (tmp_path / "ev" / "report.md").read_text()
    # a classification-style eval refuses several checkpoints with a clear message
    r = run_cli(["eval", str(tmp_path / "pc"), str(tmp_path / "un"), "--task", "mazes"], tmp_path)
    assert r.returncode == 2 and "one checkpoint" in r.stderr
    r = run_cli(["eval", str(tmp_path / "pc"), "--task", "mri", "--seed", "0", "--out", str(tmp_path / "e2")], tmp_path)
    assert r.returncode == 2 and "trained or validated on" in r.stderr
    r = run_cli(["train", "mri_pcrnn_cpu", "data_kwargs.bogus=1", f"out_dir={tmp_path / 'x'}"], tmp_path)
    assert r.returncode == 2 and "bogus" in r.stderr and "accelerations" in r.stderr


def _knee_like(path, seed=0):
    """A fastMRI-knee-like file: k-space (slices, 24, 20) with a readout-oversampled image and a
    centre-cropped 16x16 target, as in the real single-coil knee data (640x368 -> 320x320)."""
    import h5py
    k, _ = phantom_volume(seed, 0, 2, (24, 20))
    target = np.abs(torch.view_as_complex(torch.stack(
        [zero_filled(complex_to_channels(torch.from_numpy(k))).select(1, 0),
         zero_filled(complex_to_channels(torch.from_numpy(k))).select(1, 1)], -1).contiguous()).numpy())
    target = target[:, 4:20, 2:18].astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k)
        f.create_dataset("reconstruction_esc", data=target)
        f.attrs["max"] = float(target.max())


def test_targets_smaller_than_kspace_are_centre_cropped(tmp_path):
    (tmp_path / "val").mkdir()
    _knee_like(tmp_path / "val" / "knee.h5")
    x, y = load_slices(tmp_path / "val", 10)
    assert x.shape == (2, 2, 24, 20) and y.shape == (2, 16, 16)
    model = convrnn.create_model("unet_mri", chans=4, num_pools=2)
    res = evaluate_reconstruction({"u": model}, tmp_path / "val", ["8x"], seed=1, progress=False)
    from convrnn.tasks.mri import MRISliceDataset, center_crop
    ds = MRISliceDataset(tmp_path / "val", mask=("8x", 1))
    gt = torch.stack([ds[i]["target"] for i in range(2)])
    zf = center_crop(torch.stack([rss(zero_filled(ds[i]["kspace_masked"]), dim=0) for i in range(2)]), (16, 16))
    assert res["accelerations"]["8x"]["methods"]["zero_filled"]["ssim"] == pytest.approx(ssim(gt, zf))
    cfg = TrainConfig.from_dict({"task": "mri", "batch_size": 2})
    task = get_task("mri")
    score, steps = task.validate(model, x, y, cfg, "cpu")
    mask = task.masks(2, 20, [999_983], fixed=True)
    with torch.no_grad():
        pred = center_crop(reconstruct(model, x * mask, mask), (16, 16))
    assert score == pytest.approx(np.mean([ssim(t, p, maxval=float(t.max())) for t, p in zip(y, pred)]), abs=1e-6)
    assert steps == 1.0


def test_multicoil_training_step_and_channel_mismatch():
    cfg = TrainConfig.from_dict({"task": "mri", "n_train": 2, "n_val": 2, "loss": "final",
                                 "data_kwargs": {"size": 16, "slices": 2, "coils": 3}})
    task = get_task("mri", **cfg.data_kwargs)
    (x, y), _ = task.datasets(cfg)
    assert x.shape == (2, 6, 16, 16) and y.shape == (2, 16, 16)
    # the multi-coil target is the RSS of the coil images
    assert torch.allclose(rss(zero_filled(x), dim=1), y, atol=1e-5 * float(y.max()))
    model = convrnn.create_model("pcrnn", coils=3, width=4, final_width=4, iterations=(2, 2, 2))
    loss = task.loss(model, x, y, cfg, 0)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="6 channels|channels"):
        task.loss(convrnn.create_model("pcrnn", coils=1, **TINY_PC), x, y, cfg, 0)



def test_bad_mri_options_and_wider_targets():
    for kw, msg in (({"loss": "act"}, "loss=final"), ({"data_kwargs": {"slices": 0}}, "slices"),
                    ({"data_kwargs": {"coils": -1}}, "coils"), ({"data_kwargs": {"ssim_weight": "x"}}, "ssim_weight"),
                    ({"data_kwargs": {"size": 4}}, "size")):
        cfg = TrainConfig.from_dict({"task": "mri", "loss": "final", "n_train": 2, "n_val": 2, **kw})
        with pytest.raises(ValueError, match=msg):
            get_task("mri", **cfg.data_kwargs).datasets(cfg)
    # a target wider than the image (fastMRI brain): both are cropped to the common size
    from convrnn.tasks.mri_recon import _match
    p, t = _match(torch.zeros(2, 20, 12), torch.ones(2, 16, 16))
    assert p.shape == t.shape == (2, 16, 12)


def test_mri_training_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file
    common = ["mri_pcrnn_cpu", "n_train=8", "n_val=2", "epochs=2", "batch_size=2", "num_threads=1", "ckpt_every=3",
              "data_kwargs.size=16", "data_kwargs.slices=4", "model_kwargs.width=4", "model_kwargs.final_width=4",
              "model_kwargs.iterations=[1,1,2]"]
    a = run_cli(["train", *common, f"out_dir={tmp_path / 'a'}", "--no-progress"], tmp_path, timeout=300)
    assert a.returncode == 0, a.stderr
    killed = run_cli_killed(["train", *common, f"out_dir={tmp_path / 'b'}", "--no-progress"], tmp_path, after_steps=5,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    b = run_cli(["train", *common, f"out_dir={tmp_path / 'b'}", "--resume", "--no-progress"], tmp_path, timeout=300)
    assert b.returncode == 0, b.stderr
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_rss_gradient_is_finite_where_a_pixel_is_zero():
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0, 1, 1] = 3.0
    x[0, 1, 1, 1] = 4.0
    x.requires_grad_(True)
    out = rss(x, dim=1)
    assert out[0, 1, 1].item() == 5.0 and out[0, 0, 0].item() < 1e-18
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad[0, :, 1, 1], torch.tensor([0.6, 0.8]))


def test_training_through_the_trainer_beats_zero_filled(tmp_path):
    """A small PC-RNN trained by convrnn.train for 160 steps on 32 phantom slices reconstructs the
    held-out slices far better than zero-filling does under the same validation masks."""
    from convrnn.config import load_config
    from convrnn.train import train
    cfg = load_config("mri_pcrnn_cpu", ["n_train=32", "n_val=8", "epochs=20", "batch_size=4", "num_threads=1",
                                        "data_kwargs.size=24", "data_kwargs.slices=8", "model_kwargs.width=8",
                                        "model_kwargs.final_width=8", "model_kwargs.iterations=[2,2,2]", "lr=0.01",
                                        "warmup_epochs=0.1", f"out_dir={tmp_path / 'run'}"])
    res = train(cfg, progress=False)
    task = get_task("mri", **cfg.data_kwargs)
    _, (x, y) = task.datasets(cfg)
    mask = task.masks(len(x), x.shape[-1], [999_983], fixed=True)
    zf = rss(zero_filled(x * mask), dim=1)
    zf_ssim = np.mean([ssim(t, p, maxval=float(t.max())) for t, p in zip(y, zf)])
    assert res["val_acc"] > zf_ssim + 0.1, (res["val_acc"], zf_ssim)



def test_mask_per_volume_matches_fastmri_validation(tmp_path):
    from convrnn.tasks.mri import MRISliceDataset
    write_phantom_volumes(tmp_path, 2, slices=3, size=16, seed=0)
    per_slice = MRISliceDataset(tmp_path, mask=("4x", 7))
    per_vol = MRISliceDataset(tmp_path, mask=("4x", 7), mask_per_volume=True)
    m = [per_vol[i]["mask"] for i in range(6)]
    assert all(torch.equal(m[0], m[i]) for i in (1, 2)) and all(torch.equal(m[3], m[i]) for i in (4, 5))
    assert not torch.equal(m[0], m[3])
    import zlib
    assert torch.equal(m[3].flatten(), make_mask("4x", 16, [7, zlib.crc32(b"phantom_0001.h5")]))
    assert not all(torch.equal(per_slice[0]["mask"], per_slice[i]["mask"]) for i in (1, 2))
    model = convrnn.create_model("unet_mri", chans=4, num_pools=2)
    res = evaluate_reconstruction({"u": model}, tmp_path, ["4x"], seed=7, progress=False, mask_per_volume=True)
    gt = torch.stack([per_vol[i]["target"] for i in range(3)])
    zf = torch.stack([rss(zero_filled(per_vol[i]["kspace_masked"]), dim=0) for i in range(3)])
    assert res["mask_per_volume"] is True
    assert res["accelerations"]["4x"]["methods"]["zero_filled"]["per_volume"][0]["ssim"] == pytest.approx(ssim(gt, zf))
