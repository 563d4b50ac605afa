"""Tests for the representational-geometry analyses (analysis/geometry.py)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import convrnn
from convrnn.analysis import geometry as geo
from convrnn.evaluate import spearman

STEPS = 3


class _ToyArea(nn.Module):
    def __init__(self):
        super().__init__()
        self.output = nn.Identity()


class LinearToy(nn.Module):
    """Two hookable areas with known linear dynamics: A(1) = x, A(t) = rho A(t-1); B(1) = 0,
    B(t) = 2 A(t-1). A perturbation of norm eps of x therefore gives exactly
    d_A(t) = rho^(t-1) and d_B(t) = 2 rho^(t-2) (t >= 2), so lambda = log(rho) for both."""

    def __init__(self, rho: float):
        super().__init__()
        self.rho = rho
        self.areas = nn.ModuleDict({"A": _ToyArea(), "B": _ToyArea()})

    def forward(self, x, steps=3, return_steps=True):
        a, outs = None, []
        for t in range(steps):
            b = torch.zeros_like(x) if a is None else 2 * a
            a = x if a is None else self.rho * a
            a = self.areas["A"].output(a)
            b = self.areas["B"].output(b)
            outs.append(b.mean((1, 2, 3)))
        return SimpleNamespace(step_outputs=torch.stack(outs))


def _greco(**kw):
    return convrnn.create_model("greco_fb", width=0.125, in_channels=1, num_classes=2, steps=STEPS, **kw)


def _images(n=12, seed=0):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


# ---- collect_area_outputs ----------------------------------------------------------------------------

def test_collect_shapes_batching_and_readout_equality():
    model = _greco()
    model.train()                                  # must be put in eval and restored
    x = _images(10)
    acts = geo.collect_area_outputs(model, x, STEPS, batch_size=4)
    assert model.training
    sizes = model.spatial_sizes(16, 16)
    for name, area in model.areas.items():
        assert acts[name].shape == (STEPS, 10, area.channels, *sizes[name]) and acts[name].dtype == torch.float32
    with torch.no_grad():
        direct = model.eval()(x, steps=STEPS, return_steps=True).step_outputs
        via = torch.stack([model.readout(acts["L3"][t]) for t in range(STEPS)])
    torch.testing.assert_close(via, direct, rtol=1e-5, atol=1e-6)
    one = geo.collect_area_outputs(model, x, STEPS, areas=["L2"], batch_size=64)
    assert list(one) == ["L2"] and torch.allclose(one["L2"], acts["L2"], atol=1e-6)
    pooled = geo.collect_area_outputs(model, x, STEPS, areas="L1", pool=2)
    assert pooled["L1"].shape == (STEPS, 10, model.areas["L1"].channels, 2, 2)
    assert not any(a.output._forward_hooks for a in model.areas.values())     # hooks removed


def test_unknown_area_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown area 'L4'.*Valid areas: L1, L2, L3"):
        geo.collect_area_outputs(_greco(), _images(2), STEPS, areas=["L4"])
    with pytest.raises(ValueError, match="model.areas"):
        geo.collect_area_outputs(nn.Linear(2, 2), _images(2), STEPS)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        geo.collect_area_outputs(_greco(), torch.rand(1, 16, 16), STEPS)


# ---- participation ratio -----------------------------------------------------------------------------

def test_participation_ratio_isotropic_and_rank_one():
    rng = np.random.default_rng(0)
    n, d = 20000, 8
    pr = geo.participation_ratio(rng.standard_normal((n, d)))
    assert pr == pytest.approx(d / (1 + d / n), rel=0.02)      # E[PR] of a sample covariance ~ D / (1 + D/N)
    u, v = rng.standard_normal(50), rng.standard_normal(300)
    assert geo.participation_ratio(np.outer(u, v) + 3.0) == pytest.approx(1.0, abs=1e-9)   # D >> N: Gram path
    assert geo.participation_ratio(np.ones((5, 4))) == 0.0
    x = torch.randn(30, 2, 3, 4)                                # (N, C, H, W) flattened
    assert geo.participation_ratio(x) == pytest.approx(geo.participation_ratio(x.reshape(30, -1).numpy()))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        geo.participation_ratio(np.ones(5))


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), n=st.integers(3, 40), d=st.integers(2, 30))
def test_participation_ratio_rotation_and_scale_invariant(seed, scale, n, d):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 3, d)       # anisotropic
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    pr = geo.participation_ratio(x)
    assert 1 - 1e-9 <= pr <= min(n - 1, d) + 1e-9
    assert geo.participation_ratio(scale * x @ q) == pytest.approx(pr, rel=1e-7)


# ---- PCA -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exact_max", [512, 1])             # exact eigendecomposition / randomized
def test_pca_trajectories_recovers_a_plane(exact_max):
    rng = np.random.default_rng(1)
    t, n, d = 4, 30, 12
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    coords = rng.standard_normal((t, n, 2)) * [3.0, 1.0]
    feats = coords @ basis.T + 0.5
    res = geo.pca_trajectories(torch.from_numpy(feats).reshape(t, n, 3, 4), n_components=3, exact_max=exact_max)
    assert res["projections"].shape == (t, n, 3) and res["components"].shape == (3, d)
    evr = res["explained_variance_ratio"]
    assert sum(evr[:2]) == pytest.approx(1.0, abs=1e-6) and evr[0] > evr[1] and evr[2] < 1e-6
    recon = res["projections"][..., :2] @ res["components"][:2] + res["mean"]
    np.testing.assert_allclose(recon, feats, atol=1e-6)
    labels = np.arange(n) % 3
    cm = geo.class_mean_trajectories(res["projections"], labels)
    assert cm.shape == (t, 3, 3)
    np.testing.assert_allclose(cm[:, 1], res["projections"][:, labels == 1].mean(1))
    with pytest.raises(ValueError, match=r"\(T, N, D"):
        geo.pca_trajectories(feats[0])


# ---- linear probe -------------------------------------------------------------------------------------

def test_linear_probe_separable_vs_random_labels():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.standard_normal((200, 20))
    x[:, 0] += 4 * (2 * y - 1)
    assert geo.linear_probe_accuracy(x, y) >= 0.97
    acc = geo.linear_probe_accuracy(rng.standard_normal((200, 20)), rng.permutation(y))
    assert 0.3 <= acc <= 0.7
    assert geo.linear_probe_accuracy(x, y, seed=3) == geo.linear_probe_accuracy(x, y, seed=3)
    with pytest.raises(ValueError, match="at least folds=5 samples"):
        geo.linear_probe_accuracy(x[:6], np.array([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="expected 200 labels"):
        geo.linear_probe_accuracy(x, y[:10])


# ---- RDM / RSA -----------------------------------------------------------------------------------------

def test_rdm_matches_literal_double_loop():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 5))
    corr, euc = geo.rdm(x), geo.rdm(x, "euclidean")
    for i in range(7):
        for j in range(7):
            assert corr[i, j] == pytest.approx(0.0 if i == j else 1 - np.corrcoef(x[i], x[j])[0, 1], abs=1e-12)
            assert euc[i, j] == pytest.approx(np.sqrt(((x[i] - x[j]) ** 2).sum()), abs=1e-9)
    with pytest.raises(ValueError, match=r"unknown RDM metric 'cosine'.*correlation, euclidean"):
        geo.rdm(x, "cosine")


def test_rsa_identity_monotone_and_spearman():
    rng = np.random.default_rng(3)
    r = geo.rdm(rng.standard_normal((9, 4)))
    assert geo.rsa(r, r) == pytest.approx(1.0)
    assert geo.rsa(r, np.exp(3 * r) + 1) == pytest.approx(1.0)         # monotone transform
    assert geo.rsa(r, -r) == pytest.approx(-1.0)
    other = geo.rdm(rng.standard_normal((9, 4)), "euclidean")
    iu = np.triu_indices(9, 1)
    assert geo.rsa(r, other) == pytest.approx(spearman(r[iu], other[iu]))   # same as evaluate.spearman
    assert math.isnan(geo.rsa(np.zeros((4, 4)), r[:4, :4]))
    with pytest.raises(ValueError, match="square RDMs"):
        geo.rsa(r, r[:5, :5])


# ---- trajectory divergence ---------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.5, 1.5])
def test_divergence_of_linear_toy_is_exact(rho):
    x = torch.rand(6, 1, 4, 4, dtype=torch.float64)
    res = geo.trajectory_divergence(LinearToy(rho), x, 5, eps=1e-2, seed=1, batch_size=4)
    assert res["eps"] == 1e-2 and res["steps"] == 5 and set(res["areas"]) == {"A", "B"}
    np.testing.assert_allclose(res["areas"]["A"]["distance"], [rho ** t for t in range(5)], rtol=1e-9)
    np.testing.assert_allclose(res["areas"]["B"]["distance"], [0] + [2 * rho ** t for t in range(4)], rtol=1e-9)
    for a in ("A", "B"):                         # B's zero first step is left out of the fit
        assert res["areas"][a]["lyapunov"] == pytest.approx(math.log(rho), abs=1e-9)
        assert (res["areas"][a]["lyapunov"] > 0) == (rho > 1)


def test_divergence_scales_with_eps_on_linear_toy():
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    raw = []
    for eps in (1e-4, 1e-2, 1.0):
        d = geo.trajectory_divergence(LinearToy(0.8), x, 3, eps=eps)["areas"]["A"]["distance"]
        raw.append([eps * v for v in d])             # un-normalised ||a' - a||
        np.testing.assert_allclose(d, [1, 0.8, 0.64], rtol=1e-9)   # normalised: independent of eps
    assert all(raw[i][t] < raw[i + 1][t] for i in range(2) for t in range(3))
    with pytest.raises(TypeError, match="floating-point"):
        geo.trajectory_divergence(LinearToy(0.8), (x * 255).to(torch.uint8), 3)


@pytest.mark.parametrize("mc_dropout", [False, True])
def test_divergence_zero_for_identical_input(mc_dropout):
    model = _greco(dropout_at_test=mc_dropout)
    x = 0.25 + 0.5 * _images(6)
    # eps far below float32 resolution: x + delta == x, and with MC dropout both runs share the masks
    res = geo.trajectory_divergence(model, x, STEPS, eps=1e-12)
    for r in res["areas"].values():
        assert r["distance"] == [0.0] * STEPS and math.isnan(r["lyapunov"])
    real = geo.trajectory_divergence(model, x, STEPS, eps=1e-2, areas=["L1"])
    assert all(v > 0 for v in real["areas"]["L1"]["distance"])
    with pytest.raises(ValueError, match="eps"):
        geo.trajectory_divergence(model, x, STEPS, eps=0.0)


# ---- report -------------------------------------------------------------------------------------------

def test_geometry_report_json_and_png(tmp_path):
    pytest.importorskip("sklearn")
    model = _greco()
    x, y = _images(20), torch.arange(20) % 2
    rep = geo.geometry_report(model, x, y, STEPS, probe_steps=[STEPS], folds=2, batch_size=8)
    assert rep["analysis"] == "geometry" and rep["n"] == 20 and rep["pca_area"] == "L2"
    for name, r in rep["areas"].items():
        assert len(r["participation_ratio"]) == STEPS and len(r["rsa_consecutive"]) == STEPS - 1
        assert r["probe_accuracy"][:-1] == [None] * (STEPS - 1) and 0 <= r["probe_accuracy"][-1] <= 1
        assert r["rsa_final"][-1] in (1.0, None)
        assert np.array(r["pca"]["class_means"]).shape == (STEPS, 2, 3)
    # L3 at step 1 has only seen zeros: every image alike, PR 0 and RSA undefined (null)
    assert rep["areas"]["L3"]["participation_ratio"][0] == 0.0 and rep["areas"]["L3"]["rsa_final"][0] is None
    assert set(rep["divergence"]["areas"]) == {"L1", "L2", "L3"}
    paths = geo.write_geometry_report(rep, tmp_path)
    assert json.loads((tmp_path / "geometry.json").read_text()) == rep
    assert (tmp_path / "geometry.png").stat().st_size > 0 and len(paths) == 2
    with pytest.raises(ValueError, match="probe_steps"):
        geo.geometry_report(model, x, y, STEPS, probe_steps=[0], divergence=False)
