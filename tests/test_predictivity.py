"""Tests for neural predictivity (analysis/predictivity.py) on synthetic neurons with a known
generating linear model, known noise and repetitions."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from convrnn.analysis import predictivity as pr

pytest.importorskip("sklearn")

S, D, N_NEURONS, REPS, SIGMA2 = 400, 4, 40, 4, 2.0
CEILING = 1 / (1 + SIGMA2 / REPS)          # signal variance 1: ρ = 1 / (1 + σ²/R) = 2/3


def _unit(a):
    return (a - a.mean(0)) / a.std(0)


def _neurons(f_seen, f_unseen, q, seed=0):
    """Responses (REPS, S, N, bins): per bin b, signal = sqrt(q_b) f_seen w + sqrt(1 - q_b) f_unseen v (each
    part scaled to unit variance per neuron, so a fraction q_b of the signal variance is linear in
    f_seen) plus N(0, SIGMA2) noise per repetition."""
    rng = np.random.default_rng(seed)
    sig = np.stack([np.sqrt(qb) * _unit(f_seen @ rng.standard_normal((f_seen.shape[1], N_NEURONS)))
                    + np.sqrt(1 - qb) * _unit(f_unseen @ rng.standard_normal((f_unseen.shape[1], N_NEURONS)))
                    for qb in q], -1)
    return sig[None] + np.sqrt(SIGMA2) * rng.standard_normal((REPS,) + sig.shape)


def _expected_corrected(q, d=D, folds=5):
    """Analytic expectation of the corrected EV: held-out EV of a least-squares fit on n = S(1 - 1/folds)
    stimuli is 1 - (residual variance)(1 + d/n) / (total variance); divided by the ceiling."""
    n = S * (1 - 1 / folds)
    noise = SIGMA2 / REPS
    ev = 1 - ((1 - q) + noise) * (1 + d / n) / (1 + noise)
    return ev / CEILING


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    f1, f2 = rng.standard_normal((S, D)), rng.standard_normal((S, D))
    q = np.array([1.0, 0.6, 0.3])
    return f1, f2, q, _neurons(f1, f2, q)


def test_noise_ceiling_matches_known_snr(data):
    *_, resp = data
    nc = pr.noise_ceiling(resp)
    assert nc.shape == (N_NEURONS, 3)
    np.testing.assert_allclose(np.median(nc, 0), CEILING, atol=0.03)
    odd = pr.noise_ceiling(resp[:3])                       # 3 reps: halves of 1, Spearman-Brown with k = 3
    np.testing.assert_allclose(np.median(odd, 0), 1 / (1 + SIGMA2 / 3), atol=0.05)


@pytest.mark.parametrize("method,score", [("ridge", "ev"), ("pls", "ev"), ("ridge", "r2")])
def test_corrected_ev_recovers_the_known_fraction(data, method, score):
    f1, _, q, resp = data
    res = pr.neural_predictivity(f1, resp, method=method, score=score, n_components=D, folds=5)
    assert res["ev"].shape == (N_NEURONS, 3) and res["corrected_ev"].shape == (3,)
    np.testing.assert_allclose(res["corrected_ev"], _expected_corrected(q), atol=0.04)
    np.testing.assert_allclose(res["ev_median"], _expected_corrected(q) * CEILING, atol=0.03)


def test_random_features_score_near_zero(data):
    *_, resp = data
    junk = np.random.default_rng(9).standard_normal((S, 20))
    res = pr.neural_predictivity(junk, resp)
    assert np.all(np.abs(res["corrected_ev"]) < 0.08)


def test_model_steps_and_averaged_responses(data):
    f1, f2, q, resp = data
    per_step = pr.neural_predictivity(np.stack([f2, f1]), resp)           # (model steps, S, D)
    assert per_step["corrected_ev"].shape == (2, 3)
    assert per_step["corrected_ev"][1, 0] > 0.9 > 0.2 > per_step["corrected_ev"][0, 0]
    # averaged responses + the repetitions passed separately give the same numbers
    same = pr.neural_predictivity(f1, resp.mean(0), split_half=resp)
    ref = pr.neural_predictivity(f1, resp)
    np.testing.assert_allclose(same["corrected_ev"], ref["corrected_ev"])
    none = pr.neural_predictivity(f1, resp.mean(0))
    assert none["noise_ceiling"] is None and none["corrected_ev"] is None
    np.testing.assert_allclose(none["ev_median"], ref["ev_median"])


def test_bad_shapes_name_the_expected_shape(data):
    f1, _, _, resp = data
    with pytest.raises(ValueError, match=r"\(stimuli, neurons, time bins\) or \(repetitions"):
        pr.neural_predictivity(f1, resp[0, :, :, 0])
    with pytest.raises(ValueError, match=rf"expected {S} stimuli"):
        pr.neural_predictivity(f1[:10], resp)
    with pytest.raises(ValueError, match=r"\(model steps, stimuli, D\)"):
        pr.neural_predictivity(f1.reshape(S, 2, 2, 1), resp)
    with pytest.raises(ValueError, match="unknown method 'lasso'"):
        pr.neural_predictivity(f1, resp, method="lasso")
    with pytest.raises(ValueError, match=r"repetitions >= 2"):
        pr.noise_ceiling(resp[:1])


class _Area(nn.Module):
    def __init__(self):
        super().__init__()
        self.output = nn.Identity()


class ToyNet(nn.Module):
    """Image (S, 1, 2, 2) = 4 generating features f. Area A: step 1 a fixed nonlinear scramble of f,
    step 2 f itself. Area B: step 1 cos(3 f) (not linear in f), step 2 noise-like."""

    def __init__(self):
        super().__init__()
        self.areas = nn.ModuleDict({"A": _Area(), "B": _Area()})
        self.config = SimpleNamespace(steps=2)

    def forward(self, x, steps=2, return_steps=True):
        outs = []
        for t in range(steps):
            a = torch.sin(7 * x + 1) * torch.cos(5 * x.flip(-1)) if t == 0 else x
            b = torch.cos(3 * x) if t == 0 else torch.sin(11 * x.flip(-2) ** 2)
            self.areas["A"].output(a)
            outs.append(self.areas["B"].output(b).mean((1, 2, 3)))
        return SimpleNamespace(step_outputs=torch.stack(outs))


def test_report_finds_the_generating_area_and_step(tmp_path):
    rng = np.random.default_rng(4)
    f = rng.standard_normal((S, 4))
    images = torch.from_numpy(f).float().view(S, 1, 2, 2)
    g = torch.cos(3 * images).view(S, 4).double().numpy()          # area B, step 1
    sig = np.stack([_unit(f @ rng.standard_normal((4, N_NEURONS))), _unit(g @ rng.standard_normal((4, N_NEURONS)))], -1)
    resp = sig[None] + np.sqrt(SIGMA2) * rng.standard_normal((REPS,) + sig.shape)
    rep = pr.predictivity_report(ToyNet(), images, resp, folds=4)
    assert rep["analysis"] == "predictivity" and rep["n_bins"] == 2 and rep["steps"] == 2
    assert [(b["area"], b["step"]) for b in rep["best"]] == [("A", 2), ("B", 1)]
    assert all(b["corrected_ev"] > 0.85 for b in rep["best"])
    np.testing.assert_allclose(rep["noise_ceiling_median"], CEILING, atol=0.04)
    assert np.array(rep["areas"]["A"]["corrected_ev"]).shape == (2, 2)
    paths = pr.write_predictivity_report(rep, tmp_path)
    assert json.loads(paths[0].read_text()) == rep and (tmp_path / "predictivity.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"images: expected \(stimuli=400"):
        pr.predictivity_report(ToyNet(), images[:5], resp)
    with pytest.raises(ValueError, match="unknown area 'IT'"):
        pr.predictivity_report(ToyNet(), images, resp, areas=["IT"])


def test_features_by_area_step():
    acts = {"A": torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 2, 2)}
    out = pr.features_by_area_step(acts)
    assert set(out) == {("A", 1), ("A", 2)} and out[("A", 2)].shape == (3, 4)
    np.testing.assert_array_equal(out[("A", 2)], acts["A"][1].reshape(3, 4).numpy())
    assert set(pr.features_by_area_step(acts, steps=[2])) == {("A", 2)}
    with pytest.raises(ValueError, match=r"steps in 1\.\.2"):
        pr.features_by_area_step(acts, steps=[3])
