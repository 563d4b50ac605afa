"""Tests for convrnn.tasks.mri: FFT conventions, masks, data consistency, fastMRI h5 I/O, dataset."""

from __future__ import annotations

from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

h5py = pytest.importorskip("h5py")

from convrnn.tasks.mri import (  # noqa: E402
    MASKS,
    MRIDataError,
    MRISliceDataset,
    channels_to_complex,
    complex_to_channels,
    data_consistency,
    equispaced_mask,
    fft2c,
    ifft2c,
    make_mask,
    random_mask,
    read_volume,
    rss,
    shepp_logan,
    write_phantom_volumes,
    zero_filled,
)


def crandn(*shape, dtype=torch.complex64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def centred_dft_matrix(n: int) -> np.ndarray:
    """Literal centred orthonormal DFT: F[p, q] = exp(-2 pi i (p - c)(q - c) / n) / sqrt(n)."""
    c = n // 2
    F = np.empty((n, n), dtype=np.complex128)
    for p in range(n):
        for q in range(n):
            F[p, q] = np.exp(-2j * np.pi * (p - c) * (q - c) / n) / np.sqrt(n)
    return F


# ---------------------------------------------------------------------------------------------
# FFT
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 16, 12), (7, 5), (1, 9, 8)])
def test_fft_round_trip_complex(shape):
    x = crandn(*shape)
    torch.testing.assert_close(ifft2c(fft2c(x)), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fft2c(ifft2c(x)), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [2, 8])
def test_fft_round_trip_and_agreement_channels(channels):
    x = torch.randn(3, channels, 16, 10)
    k = fft2c(x)
    assert k.shape == x.shape and k.dtype == torch.float32
    torch.testing.assert_close(ifft2c(k), x, atol=1e-5, rtol=1e-5)
    # the channel path is the complex path in another layout
    z = channels_to_complex(x)
    expect = complex_to_channels(fft2c(z))
    if channels > 2:
        expect = expect.flatten(-4, -3)
    torch.testing.assert_close(k, expect)


def test_parseval_orthonormal():
    x = crandn(4, 2, 32, 24, dtype=torch.complex128)
    k = fft2c(x)
    torch.testing.assert_close(torch.linalg.vector_norm(k), torch.linalg.vector_norm(x), atol=0, rtol=1e-12)
    y = crandn(4, 2, 32, 24, dtype=torch.complex128, seed=1)
    # unitary: inner products preserved
    torch.testing.assert_close(torch.vdot(k.flatten(), fft2c(y).flatten()), torch.vdot(x.flatten(), y.flatten()))


@pytest.mark.parametrize("H,W", [(8, 8), (7, 6)])
def test_fft2c_matches_literal_dft_matrix(H, W):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W))
    expect = centred_dft_matrix(H) @ x @ centred_dft_matrix(W).T
    got = fft2c(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expect, atol=1e-12)
    # DC lands on (H // 2, W // 2)
    np.testing.assert_allclose(fft2c(torch.ones(H, W, dtype=torch.complex128)).numpy()[H // 2, W // 2], np.sqrt(H * W))


def test_channel_layout_interleaves_coils():
    z = crandn(2, 3, 4, 5)
    ch = complex_to_channels(z)
    assert ch.shape == (2, 3, 2, 4, 5)
    flat = ch.flatten(-4, -3)
    assert torch.equal(flat[:, 2], z[:, 1].real) and torch.equal(flat[:, 3], z[:, 1].imag)
    assert torch.equal(channels_to_complex(flat), z)
    assert torch.equal(channels_to_complex(complex_to_channels(z[:, 0])), z[:, 0])


def test_fft_input_errors():
    with pytest.raises(ValueError, match="even"):
        fft2c(torch.randn(2, 3, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        fft2c(torch.zeros(2, 2, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError):
        complex_to_channels(torch.randn(4, 4))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), lead=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_fft_round_trip_property(h, w, lead, seed):
    x = crandn(lead, h, w, dtype=torch.complex128, seed=seed)
    k = fft2c(x)
    torch.testing.assert_close(ifft2c(k), x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.linalg.vector_norm(k), torch.linalg.vector_norm(x))


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def centre_band(width, cf):
    n = int(np.round(width * cf))
    start = (width - n + 1) // 2
    return np.arange(start, start + n)


@pytest.mark.parametrize("setting", ["4x", "8x"])
def test_random_mask_statistics(setting):
    acc, cf = MASKS[setting]
    W = 368  # a fastMRI knee width
    band = centre_band(W, cf)
    assert W // 2 in band and len(band) == round(W * cf)
    masks = torch.stack([random_mask(W, acc, cf, seed=s) for s in range(300)]).numpy()
    assert set(np.unique(masks)) <= {0.0, 1.0} and masks.dtype == np.float32
    assert (masks[:, band] == 1).all()
    counts = masks.sum(1)
    assert abs(counts.mean() - W / acc) < 0.02 * W / acc  # expected total is exactly W / acc
    assert abs(W / counts.mean() - acc) < 0.05 * acc
    assert len({m.tobytes() for m in masks}) > 290  # seeds give different masks
    torch.testing.assert_close(random_mask(W, acc, cf, seed=7), random_mask(W, acc, cf, seed=7))


@pytest.mark.parametrize("setting", ["4x", "8x"])
def test_equispaced_mask_spacing(setting):
    acc, cf = MASKS[setting]
    W = 320
    band = set(centre_band(W, cf))
    offsets = set()
    for s in range(40):
        m = equispaced_mask(W, acc, cf, seed=s).numpy()
        assert all(m[b] == 1 for b in band)
        outside = [j for j in np.flatnonzero(m) if j not in band]
        offsets.add(outside[0] % acc)
        assert all(j % acc == outside[0] % acc for j in outside)
        # every acc-th column outside the band is sampled
        assert [j for j in range(W) if j % acc == outside[0] % acc and j not in band] == outside
        assert W / m.sum() <= acc
    assert len(offsets) > 1  # the offset is seeded


def test_make_mask_and_errors():
    torch.testing.assert_close(make_mask("8x", 64, 3), random_mask(64, 8, 0.04, 3))
    torch.testing.assert_close(make_mask("4x", 64, 3, kind="equispaced"), equispaced_mask(64, 4, 0.08, 3))
    with pytest.raises(ValueError, match="setting"):
        make_mask("5x", 64)
    with pytest.raises(ValueError, match="acceleration"):
        random_mask(64, 0.5, 0.08)
    with pytest.raises(ValueError, match="center_fraction"):
        random_mask(64, 4, 1.5)
    with pytest.raises(ValueError, match="integer"):
        equispaced_mask(64, 2.5, 0.08)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(W=st.integers(8, 512), acc=st.integers(1, 10), cf=st.floats(0.0, 0.3), seed=st.integers(0, 2**32))
def test_mask_properties(W, acc, cf, seed):
    band = centre_band(W, cf)
    for fn in (random_mask, equispaced_mask):
        m = fn(W, acc, cf, seed).numpy()
        assert m.shape == (W,) and set(np.unique(m)) <= {0.0, 1.0}
        assert (m[band] == 1).all()
        assert np.array_equal(m, fn(W, acc, cf, seed).numpy())
    e = equispaced_mask(W, acc, cf, seed).numpy()
    outside = np.setdiff1d(np.flatnonzero(e), band)
    assert len(set(outside % acc)) <= 1


# ---------------------------------------------------------------------------------------------
# zero filling, RSS, data consistency
# ---------------------------------------------------------------------------------------------


def test_zero_filled_and_rss_layouts():
    k = crandn(2, 4, 16, 16)
    mask = random_mask(16, 4, 0.08, 0)
    zf = zero_filled(k, mask)
    torch.testing.assert_close(zf, ifft2c(k * mask))
    ch = complex_to_channels(k).flatten(-4, -3)
    zf_ch = zero_filled(ch, mask)
    torch.testing.assert_close(channels_to_complex(zf_ch), zf, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rss(zf_ch, dim=1), rss(zf, dim=1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rss(complex_to_channels(zf[:, 0]), dim=-3), zf[:, 0].abs())


@pytest.mark.parametrize("layout", ["complex", "channels", "channels-multicoil"])
def test_data_consistency_keeps_measured_kspace(layout):
    B, C, H, W = 2, 3, 24, 20
    y_full = crandn(B, C, H, W, seed=1)
    x = crandn(B, C, H, W, seed=2)
    mask = torch.stack([random_mask(W, 4, 0.08, seed=s) for s in range(B)]).reshape(B, 1, 1, W)
    y = y_full * mask
    if layout == "channels":
        x, y, mask = complex_to_channels(x[:, 0]), complex_to_channels(y[:, 0]), mask  # (B, 2, H, W)
    elif layout == "channels-multicoil":
        x, y = complex_to_channels(x).flatten(1, 2), complex_to_channels(y).flatten(1, 2)  # (B, 2C, H, W)
    out = data_consistency(x, y, mask)
    assert out.shape == x.shape and out.dtype == x.dtype
    k_out, k_x = fft2c(out), fft2c(x)
    m = (mask != 0).expand_as(k_out)
    torch.testing.assert_close(k_out[m], y[m], atol=2e-6, rtol=0)
    torch.testing.assert_close(k_out[~m], k_x[~m], atol=2e-6, rtol=0)


def test_data_consistency_exact_in_float64_and_fixed_point():
    x = crandn(1, 32, 32, dtype=torch.complex128, seed=3)
    mask = equispaced_mask(32, 4, 0.08, 0)
    y = fft2c(crandn(1, 32, 32, dtype=torch.complex128, seed=4)) * mask
    k_out = fft2c(data_consistency(x, y, mask))
    m = (mask != 0).expand_as(k_out)
    assert (k_out[m] - y[m]).abs().max() < 1e-13
    # the true image is a fixed point of DC with its own measurements
    truth = crandn(1, 32, 32, dtype=torch.complex128, seed=5)
    torch.testing.assert_close(data_consistency(truth, fft2c(truth) * mask, mask), truth)
    with pytest.raises(ValueError, match="same shape"):
        data_consistency(x, complex_to_channels(y), mask)
    with pytest.raises(ValueError, match="broadcast"):
        data_consistency(x, y, torch.ones(31))


# ---------------------------------------------------------------------------------------------
# h5 files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return write_phantom_volumes(tmp_path_factory.mktemp("sc"), 2, slices=3, size=(32, 24), coils=0, seed=0)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return write_phantom_volumes(tmp_path_factory.mktemp("mc"), 2, slices=2, size=32, coils=4, seed=1)


def test_shepp_logan_values():
    img = shepp_logan(64)
    assert img.shape == (64, 64) and img.min() >= 0 and img.max() == pytest.approx(1.0)
    assert np.isclose(img[32, 32], 0.2) or img[32, 32] > 0  # inside the head
    assert img[0, 0] == 0 and img[0, 63] == 0


def test_h5_round_trip_single_coil(single):
    assert [p.name for p in single] == ["phantom_0000.h5", "phantom_0001.h5"]
    assert not any(p.name.endswith(".tmp") for p in single[0].parent.iterdir())  # atomic writes clean up
    with h5py.File(single[0], "r") as f:  # the raw fastMRI layout
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 32, 24)
        assert f["reconstruction_esc"].shape == f["reconstruction_rss"].shape == (3, 32, 24)
        assert f["reconstruction_esc"].dtype == np.float32
        assert {"max", "norm", "acquisition", "patient_id"} <= set(f.attrs)
        assert isinstance(f["ismrmrd_header"][()], bytes)
    v = read_volume(single[0])
    assert not v["multicoil"] and v["mask"] is None and v["fname"] == "phantom_0000.h5"
    img = ifft2c(torch.from_numpy(v["kspace"]))
    target = torch.from_numpy(v["reconstruction_esc"])
    torch.testing.assert_close(img.abs(), target, atol=1e-5 * float(target.max()), rtol=0)
    assert np.array_equal(v["reconstruction_esc"], v["reconstruction_rss"])
    assert v["attrs"]["max"] == pytest.approx(float(v["reconstruction_esc"].max()))
    assert v["attrs"]["norm"] == pytest.approx(float(np.linalg.norm(v["kspace"])), rel=1e-5)
    assert v["attrs"]["acquisition"] == "CORPD_FBK"
    assert v["encoded_size"] == v["recon_size"] == (32, 24, 1)
    ElementTree.fromstring(v["ismrmrd_header"])  # well-formed XML
    assert not np.iscomplexobj(target.numpy()) and not np.allclose(np.angle(img.numpy()[img.abs().numpy() > 0.1]), 0)
    assert read_volume(single[1])["attrs"]["patient_id"] != v["attrs"]["patient_id"]


def test_h5_round_trip_multi_coil(multi):
    v = read_volume(multi[0])
    assert v["multicoil"] and v["kspace"].shape == (2, 4, 32, 32)
    assert "reconstruction_esc" not in v and v["reconstruction_rss"].shape == (2, 32, 32)
    coil_images = ifft2c(torch.from_numpy(v["kspace"]))
    target = torch.from_numpy(v["reconstruction_rss"])
    torch.testing.assert_close(rss(coil_images, dim=1), target, atol=1e-5 * float(target.max()), rtol=0)
    # the coils see different parts of the object
    energy = (coil_images.abs() ** 2).sum((0, 2, 3))
    assert energy.min() > 0 and not torch.allclose(coil_images[:, 0].abs(), coil_images[:, 1].abs())


def test_phantoms_deterministic(tmp_path, single):
    a = write_phantom_volumes(tmp_path / "a", 1, slices=3, size=(32, 24), seed=0)  # prefix of n_volumes=2
    b = write_phantom_volumes(tmp_path / "b", 1, slices=3, size=(32, 24), seed=5)
    va, v0, vb = read_volume(a[0]), read_volume(single[0]), read_volume(b[0])
    assert np.array_equal(va["kspace"], v0["kspace"]) and va["attrs"] == v0["attrs"]
    assert not np.array_equal(va["kspace"], vb["kspace"])
    assert not np.allclose(v0["reconstruction_esc"][0], v0["reconstruction_esc"][1])  # slices vary


def test_test_layout_file_and_dataset(tmp_path):
    (p,) = write_phantom_volumes(tmp_path, 1, slices=2, size=32, coils=2, undersample="8x")
    v = read_volume(p)
    assert v["mask"].dtype == bool and v["mask"].shape == (32,)
    assert v["attrs"]["acceleration"] == 8 and v["attrs"]["num_low_frequency"] == round(32 * 0.04)
    assert not np.any(v["kspace"][..., ~v["mask"]]) and "reconstruction_rss" not in v
    with pytest.raises(MRIDataError, match="no target"):
        MRISliceDataset(p)
    ds = MRISliceDataset(p, mask=None, target_key="none")
    item = ds[1]
    assert item["kspace_masked"].shape == (4, 32, 32) and item["target"].numel() == 0
    assert torch.equal(item["mask"].flatten().bool(), torch.from_numpy(v["mask"]))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def test_truncated_and_corrupt_files(tmp_path, single):
    bad = tmp_path / "trunc.h5"
    data = single[0].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    for p in (bad, tmp_path / "missing.h5"):
        with pytest.raises(MRIDataError, match=p.name):
            read_volume(p)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(MRIDataError, match="garbage.h5.*HDF5"):
        read_volume(garbage)
    with pytest.raises(MRIDataError, match="trunc.h5"):
        MRISliceDataset(bad)
    assert issubclass(MRIDataError, ValueError)


def test_damaged_metadata_raises_only_mri_data_error(tmp_path, multi):
    """Overwrite bytes in the HDF5 metadata region: reading either works or raises MRIDataError."""
    data = multi[0].read_bytes()
    rng = np.random.default_rng(0)
    errors = 0
    for t in range(60):
        b = bytearray(data)
        i = int(rng.integers(0, 4096))
        b[i:i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        p = tmp_path / f"damaged{t}.h5"
        p.write_bytes(bytes(b))
        try:
            read_volume(p)
            MRISliceDataset(p)[0]
        except MRIDataError as exc:
            assert p.name in str(exc)
            errors += 1
    assert errors > 0


def test_missing_keys_and_bad_shapes(tmp_path):
    k = np.zeros((2, 8, 8), np.complex64)
    cases = {
        "nokspace": ({"reconstruction_rss": np.zeros((2, 8, 8), np.float32)}, "missing key 'kspace'"),
        "ndim": ({"kspace": np.zeros((8, 8), np.complex64)}, r"expected \(slices, H, W\)"),
        "real": ({"kspace": np.zeros((2, 8, 8), np.float32)}, "expected complex"),
        "slices": ({"kspace": k, "reconstruction_rss": np.zeros((3, 8, 8), np.float32)}, "match the 2 slices"),
        "mask": ({"kspace": k, "mask": np.ones(7, bool)}, r"expected \(8,\)"),
    }
    for name, (datasets, msg) in cases.items():
        p = write_h5(tmp_path / f"{name}.h5", **datasets)
        with pytest.raises(MRIDataError, match=msg) as info:
            read_volume(p)
        assert f"{name}.h5" in str(info.value)
    ok = write_h5(tmp_path / "ok.h5", kspace=k, reconstruction_rss=np.zeros((2, 8, 8), np.float32))
    with pytest.raises(MRIDataError, match="reconstruction_esc"):
        MRISliceDataset(ok, target_key="reconstruction_esc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MRIDataError, match="no .h5 files"):
        MRISliceDataset(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------


def test_dataset_items_single_coil(single):
    ds = MRISliceDataset(single[0].parent, mask=("4x", 0))
    assert len(ds) == 6
    item = ds[4]
    assert item["fname"] == "phantom_0001.h5" and item["slice"] == 1
    assert item["kspace_masked"].shape == item["zero_filled"].shape == (2, 32, 24)
    assert item["mask"].shape == (1, 1, 24) and item["target"].shape == (32, 24)
    assert item["kspace_masked"].dtype == item["zero_filled"].dtype == item["target"].dtype == torch.float32
    torch.testing.assert_close(ifft2c(item["kspace_masked"]), item["zero_filled"])
    v = read_volume(single[1])
    assert np.array_equal(item["target"].numpy(), v["reconstruction_esc"][1])
    assert float(item["max"]) == pytest.approx(v["attrs"]["max"])
    torch.testing.assert_close(ds[4]["mask"], item["mask"])  # fixed seed: same mask every call
    assert not torch.equal(ds[3]["mask"], item["mask"]) or not torch.equal(ds[5]["mask"], item["mask"])
    assert MRISliceDataset(single, crop=(16, 16))[0]["target"].shape == (16, 16)


def test_dataset_multi_coil_batches_and_dc(multi):
    ds = MRISliceDataset(multi, mask=("8x", None, "equispaced"), target_key="computed")
    assert len(ds) == 4
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["kspace_masked"].shape == batch["zero_filled"].shape == (2, 8, 32, 32)
    assert batch["mask"].shape == (2, 1, 1, 32) and batch["target"].shape == (2, 32, 32)
    # the zero-filled image is a fixed point of DC with its own measurements
    dc = data_consistency(batch["zero_filled"], batch["kspace_masked"], batch["mask"])
    torch.testing.assert_close(dc, batch["zero_filled"], atol=1e-6, rtol=1e-5)
    v = read_volume(multi[0])
    torch.testing.assert_close(batch["target"][0], torch.from_numpy(v["reconstruction_rss"][0]), atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    m1 = ds[0]["mask"]
    torch.manual_seed(0)
    assert torch.equal(ds[0]["mask"], m1)  # seed=None draws from torch's generator: reproducible
    with pytest.raises(ValueError, match="setting"):
        MRISliceDataset(multi, mask=("3x", 0))
