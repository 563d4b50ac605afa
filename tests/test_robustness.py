"""Tests for the robustness analyses (analysis/robustness.py)."""
from __future__ import annotations

import json

import pytest
import torch

import convrnn
from convrnn.analysis import robustness as rb
from convrnn.models import multiarea as multiarea_mod  # noqa: F401  (registers the presets)

STEPS = 3


def _data(n=48, seed=0):
    """Two linearly separable classes of 1x16x16 images: bright left half vs bright right half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 + 0.1 * torch.rand(n, 1, 16, 16, generator=g)
    x[y == 0, :, :, :8] += 0.4
    x[y == 1, :, :, 8:] += 0.4
    return x.clamp(0, 1), y


def _model(name="greco_ff", **kw):
    return convrnn.create_model(name, width=0.125, in_channels=1, num_classes=2, steps=STEPS, **kw)


@pytest.fixture(scope="module")
def trained():
    """A tiny greco_ff trained a few steps to be right on most of the separable data."""
    torch.manual_seed(0)
    model = _model()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, steps=STEPS).output, y)
        loss.backward()
        opt.step()
    model.eval()
    return model, x, y


def _clean_acc(model, x, y):
    with torch.no_grad():
        return (model.eval()(x, steps=STEPS).output.argmax(-1) == y).double().mean().item()


# ---- noise --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", rb.NOISE_KINDS)
def test_level_zero_is_clean_accuracy(kind):
    model, (x, y) = _model().eval(), _data(16)
    r = rb.noise_robustness(model, x, y, kind=kind, levels=[0.0, 0.3], steps=STEPS, batch_size=7)
    clean = rb.speed_accuracy(model, x, y, steps=STEPS)["accuracy"]
    assert r["accuracy"][0] == clean
    assert len(r["accuracy"]) == 2 and len(r["accuracy"][1]) == STEPS
    assert r["levels"] == [0.0, 0.3] and r["kind"] == kind


def test_noise_is_deterministic_and_batch_independent():
    model, (x, y) = _model().eval(), _data(16)
    a = rb.noise_robustness(model, x, y, kind="gaussian", levels=[0.5], steps=STEPS, seed=3, batch_size=4)
    b = rb.noise_robustness(model, x, y, kind="gaussian", levels=[0.5], steps=STEPS, seed=3, batch_size=16)
    assert a == b
    n1 = rb.add_noise(x, "salt_pepper", 0.2, torch.Generator().manual_seed(1))
    n2 = rb.add_noise(x, "salt_pepper", 0.2, torch.Generator().manual_seed(1))
    assert torch.equal(n1, n2)


def test_blur_sigma_zero_identity_and_constant_preserved():
    x = torch.rand(2, 3, 11, 13)
    assert torch.equal(rb.gaussian_blur(x, 0.0), x)
    c = torch.full((1, 2, 9, 9), 0.37)
    for s in (0.5, 1.0, 4.0):      # 4.0: kernel larger than the image
        out = rb.gaussian_blur(c, s)
        assert out.shape == c.shape
        torch.testing.assert_close(out, c)
        assert abs(out.mean().item() - 0.37) < 1e-6
    k = rb.gaussian_kernel1d(1.5)
    assert k.numel() == 11 and abs(k.sum().item() - 1) < 1e-6
    assert rb.gaussian_blur(x, 1.0).std() < x.std()           # it does smooth


def test_salt_pepper_fraction_matches_level():
    x = torch.full((20, 3, 32, 32), 0.5)
    for level in (0.05, 0.3, 0.8):
        out = rb.add_noise(x, "salt_pepper", level, torch.Generator().manual_seed(0))
        hit = (out != 0.5)
        assert torch.equal(hit.all(1), hit.any(1))             # all channels of a pixel together
        frac = hit[:, 0].double().mean().item()
        n = 20 * 32 * 32
        assert abs(frac - level) < 4 * (level * (1 - level) / n) ** 0.5
        salt = (out[:, 0] == 1).double().sum() / hit[:, 0].sum()
        assert abs(salt.item() - 0.5) < 0.05
        assert set(out.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_gaussian_noise_clipped_and_bad_args():
    x = torch.rand(4, 1, 8, 8)
    out = rb.add_noise(x, "gaussian", 2.0, torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    with pytest.raises(ValueError, match="noise kind"):
        rb.add_noise(x, "speckle", 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        rb.add_noise(x, "gaussian", -1)


# ---- speed-accuracy -----------------------------------------------------------------------------

def test_speed_accuracy_last_step_matches_output(trained):
    model, x, y = trained
    r = rb.speed_accuracy(model, x, y, steps=STEPS, batch_size=10)
    assert len(r["accuracy"]) == STEPS
    assert r["accuracy"][-1] == pytest.approx(_clean_acc(model, x, y))
    assert r["auc"] == pytest.approx(sum(r["accuracy"]) / STEPS) and 0 <= r["auc"] <= 1
    assert not model.training


# ---- adversarial --------------------------------------------------------------------------------

def test_trained_model_is_nontrivial(trained):
    model, x, y = trained
    assert _clean_acc(model, x, y) >= 0.8


@pytest.mark.parametrize("attack", rb.ATTACKS)
def test_adversarial_eps_zero_clean_and_monotone(trained, attack):
    model, x, y = trained
    r = rb.adversarial_accuracy(model, x, y, eps_list=[0.0, 0.05, 0.2], attack=attack, steps=STEPS,
                                pgd_steps=5, library="own", batch_size=24)
    assert r["accuracy"][0] == pytest.approx(_clean_acc(model, x, y))
    if attack == "pgd":
        assert r["accuracy"][1] <= r["accuracy"][0] and r["accuracy"][2] <= r["accuracy"][1]
        assert r["accuracy"][2] < r["accuracy"][0]
    assert len(r["step_accuracy"][1]) == STEPS


def test_gradient_flows_through_all_steps():
    """With the image shown only at step 1 (t_on=1), the final output still depends on it: the
    gradient reaches the input through every unrolled step, and FGSM changes the final logits."""
    torch.manual_seed(0)
    model = _model("greco_fb").eval()
    x, y = _data(4)
    f = rb.FinalStepLogits(model, STEPS, dict(t_on=1))
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(f(xg), y).backward()
    assert xg.grad.abs().sum() > 0
    adv = rb._own_fgsm(f, x, y, 0.1)
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and not torch.equal(adv, x)
    with torch.no_grad():
        assert not torch.allclose(f(adv), f(x))


def test_foolbox_fgsm_identical_pgd_close(trained):
    pytest.importorskip("foolbox")
    model, x, y = trained
    x, y = x[:16], y[:16]
    for eps in (0.03, 0.1):
        ours = rb.adversarial_examples(model, x, y, eps, "fgsm", STEPS, library="own")
        theirs = rb.adversarial_examples(model, x, y, eps, "fgsm", STEPS, library="foolbox")
        assert torch.equal(ours, theirs)
    kw = dict(eps_list=[0.0, 0.1], attack="pgd", steps=STEPS, pgd_steps=4, rel_stepsize=0.3)
    a = rb.adversarial_accuracy(model, x, y, library="own", **kw)
    b = rb.adversarial_accuracy(model, x, y, library="foolbox", **kw)
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1 / 16 + 1e-9)


def test_bad_attack_args(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="attack"):
        rb.adversarial_accuracy(model, x[:2], y[:2], [0.1], attack="cw", steps=STEPS)
    with pytest.raises(ValueError, match="library"):
        rb.adversarial_accuracy(model, x[:2], y[:2], [0.1], library="art", steps=STEPS)


# ---- report -------------------------------------------------------------------------------------

def test_write_report(tmp_path, trained):
    pytest.importorskip("matplotlib")
    model, x, y = trained
    x, y = x[:8], y[:8]
    results = {"noise_blur": rb.noise_robustness(model, x, y, "blur", [0, 1], steps=STEPS),
               "speed": rb.speed_accuracy(model, x, y, steps=STEPS),
               "fgsm": rb.adversarial_accuracy(model, x, y, [0, 0.1], "fgsm", steps=STEPS, library="own")}
    paths = rb.write_robustness_report(results, tmp_path / "out")
    assert [p.name for p in paths] == ["robustness.json", "noise_blur.png", "speed.png", "fgsm.png"]
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(results))
    for p in paths[1:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
