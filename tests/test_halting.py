"""Halting invariants against a literal per-sample transcription of the rules, property-tested."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convrnn
from convrnn.halting import ACT, Confidence, Convergence, Fixed, PonderNet, StableOutput, run_recurrence
from convrnn.losses import act_loss, geometric_log_prior, pondernet_kl, pondernet_loss


def scripted(logits: torch.Tensor):
    """A fake recurrence whose halting logit at step n for sample b is logits[b, n-1] and whose
    readout is one-hot(n) over M classes, so the halted output *is* the weight vector p."""
    B, M = logits.shape
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 1, 2, 2).contiguous()

    def step(xr, state, n):
        h = torch.cat([xr, torch.full_like(xr, float(n))], 1)  # channel 0: sample id, 1: step
        return h, h

    def readout(h):
        return torch.nn.functional.one_hot(h[:, 1, 0, 0].long() - 1, M).float()

    def halt(h):
        return logits[h[:, 0, 0, 0].long(), h[:, 1, 0, 0].long() - 1]

    return step, readout, halt, x


def act_reference(q, eps):
    """Graves' rule for one sample, literally."""
    M = len(q)
    total = 0.0
    for n in range(1, M + 1):
        if total + q[n - 1] >= 1 - eps or n == M:
            R = 1 - total
            p = list(q[:n - 1]) + [R] + [0.0] * (M - n)
            return n, R, p
        total += q[n - 1]


logit_tables = st.integers(1, 4).flatmap(lambda B: st.integers(1, 9).flatmap(
    lambda M: st.lists(st.lists(st.floats(-8, 8), min_size=M, max_size=M), min_size=B, max_size=B)))


@settings(max_examples=60, deadline=None)
@given(table=logit_tables, eps=st.sampled_from([0.0, 0.01, 0.3, 0.999]), shrink=st.booleans())
def test_act_invariants_match_literal_rule(table, eps, shrink):
    logits = torch.tensor(table, dtype=torch.float32, requires_grad=True)
    step, readout, halt, x = scripted(logits)
    out = run_recurrence(step, readout, halt, x, logits.shape[1], ACT(eps), shrink=shrink)
    p = out.output
    assert torch.all(p >= 0)
    torch.testing.assert_close(p.sum(1), torch.ones(len(table)), atol=1e-6, rtol=0)
    q = torch.sigmoid(logits.detach()).tolist()
    for b in range(len(table)):
        N, R, p_ref = act_reference(q[b], eps)
        assert out.steps[b].item() == N
        np.testing.assert_allclose(p[b].detach().numpy(), p_ref, atol=1e-6)
        assert out.ponder_cost[b].item() == pytest.approx(N + R, abs=1e-6)
        assert R > 0 or eps == 0.0


@settings(max_examples=40, deadline=None)
@given(table=logit_tables, eps=st.sampled_from([0.01, 0.2]))
def test_act_ponder_gradient_flows_through_remainder_only(table, eps):
    logits = torch.tensor(table, dtype=torch.float32, requires_grad=True)
    step, readout, halt, x = scripted(logits)
    out = run_recurrence(step, readout, halt, x, logits.shape[1], ACT(eps))
    if not out.ponder_cost.requires_grad:  # every sample halted at step 1: R = 1 is a constant
        assert out.steps.eq(1).all()
        return
    out.ponder_cost.sum().backward()
    q = torch.sigmoid(logits.detach())
    for b in range(len(table)):
        N = out.steps[b].item()
        expected = torch.zeros(logits.shape[1])
        expected[:N - 1] = -(q[b, :N - 1] * (1 - q[b, :N - 1]))  # dR/dlogit_k = -σ'(l_k) for k < N
        torch.testing.assert_close(logits.grad[b], expected, atol=1e-6, rtol=1e-5)


def test_act_edge_cases():
    M = 6
    # halts at step 1: q_1 >= 1 - eps
    logits = torch.full((2, M), 10.0)
    out = run_recurrence(*scripted(logits)[:3], scripted(logits)[3], M, ACT(0.01))
    assert out.steps.tolist() == [1, 1]
    torch.testing.assert_close(out.output[:, 0], torch.ones(2))
    assert out.ponder_cost.tolist() == pytest.approx([2.0, 2.0])  # N=1, R=1
    # never halts before the cap: remainder is positive and takes the last weight
    logits = torch.full((2, M), -10.0)
    s = scripted(logits)
    out = run_recurrence(*s[:3], s[3], M, ACT(0.01))
    assert out.steps.tolist() == [M, M]
    q = torch.sigmoid(torch.tensor(-10.0)).item()
    assert out.output[0, -1].item() == pytest.approx(1 - (M - 1) * q, abs=1e-6)


def ponder_reference(l):
    M = len(l)
    lam = [1 / (1 + math.exp(-v)) for v in l]
    lam[-1] = 1.0
    p, surv = [], 1.0
    for n in range(M):
        p.append(lam[n] * surv)
        surv *= 1 - lam[n]
    return p


@settings(max_examples=60, deadline=None)
@given(table=logit_tables, shrink=st.booleans())
def test_pondernet_distribution(table, shrink):
    logits = torch.tensor(table, dtype=torch.float32)
    s = scripted(logits)
    out = run_recurrence(*s[:3], s[3], logits.shape[1], PonderNet(), shrink=False, return_steps=True)
    p = out.log_halt.exp()
    assert torch.all(p >= 0) and torch.all(torch.isfinite(out.log_halt) | (p == 0))
    torch.testing.assert_close(p.sum(1), torch.ones(len(table)), atol=1e-5, rtol=0)
    for b in range(len(table)):
        np.testing.assert_allclose(p[b].numpy(), ponder_reference(table[b]), atol=1e-5)
        cum = np.cumsum(ponder_reference(table[b]))
        if np.any(np.abs(cum[:-1] - 0.5) < 1e-6):
            continue  # float32 vs float64 may fall on either side of the 0.5 threshold
        N = int(np.argmax(cum >= 0.5)) + 1 if np.any(cum >= 0.5) else len(cum)
        assert out.steps[b].item() == N
        assert out.output[b].argmax().item() == N - 1  # returns the halting step's output
    out2 = run_recurrence(*s[:3], s[3], logits.shape[1], PonderNet(), shrink=shrink)
    assert out2.steps.tolist() == out.steps.tolist()


def test_pondernet_log_space_survives_extreme_logits():
    logits = torch.tensor([[60.0, -60.0, -60.0], [-60.0, -60.0, -60.0]])
    s = scripted(logits)
    out = run_recurrence(*s[:3], s[3], 3, PonderNet(), shrink=False, return_steps=True)
    assert not torch.isnan(out.log_halt).any()
    kl = pondernet_kl(out.log_halt, 0.3)
    assert torch.isfinite(kl).all()


def test_geometric_prior_is_renormalised_and_kl_direction():
    lp = geometric_log_prior(0.2, 5)
    torch.testing.assert_close(lp.exp().sum(), torch.tensor(1.0))
    raw = torch.tensor([0.2 * 0.8 ** n for n in range(5)])
    torch.testing.assert_close(lp.exp(), raw / raw.sum())
    p = torch.tensor([[0.7, 0.1, 0.1, 0.05, 0.05]])
    q = lp.exp()
    forward = (p * (p.log() - q.log())).sum()
    reverse = (q * (q.log() - p.log())).sum()
    assert pondernet_kl(p.log(), 0.2).item() == pytest.approx(forward.item(), rel=1e-5)
    assert abs(forward - reverse) > 1e-3  # the test can tell the two directions apart


def small_model(**kw):
    torch.manual_seed(0)
    return convrnn.create_model("convrnn_dense", width=6, cell="convgru", **kw).eval()


def varied_setup():
    model = small_model(halt_bias=-1.0)
    with torch.no_grad():
        model.halting_unit.fc.weight.normal_(0, 3.0)
    x = torch.rand(6, 3, 12, 12) * torch.linspace(0.05, 3, 6).view(6, 1, 1, 1)
    return model, x


def median_confidence(model, x, steps):
    from convrnn.halting import confidence
    with torch.no_grad():
        ys = model(x, steps=steps, return_steps=True, shrink=False).step_outputs
    return torch.stack([confidence(y) for y in ys]).median().item()


@pytest.mark.parametrize("name", ["act", "confidence", "convergence", "ponder", "fixed", "stable"])
def test_batch_shrinking_matches_unshrunk(name):
    model, x = varied_setup()
    policy = {"act": ACT(0.01), "convergence": Convergence(0.05), "ponder": PonderNet(), "fixed": Fixed(),
              "stable": StableOutput(2),
              "confidence": Confidence(median_confidence(model, x, 8))}[name]
    with torch.no_grad():
        a = model(x, steps=8, halting=policy, shrink=True)
        b = model(x, steps=8, halting=policy, shrink=False)
    torch.testing.assert_close(a.output, b.output, atol=1e-5, rtol=1e-5)
    assert a.steps.tolist() == b.steps.tolist()
    if name in ("act", "confidence", "ponder", "stable"):
        assert len(set(a.steps.tolist())) > 1, a.steps  # samples really halt at different steps


def test_shrinking_really_drops_compute():
    model, x = varied_setup()
    seen = []
    model.cell.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    with torch.no_grad():
        out = model(x, steps=10, halting="act")
    assert sum(seen) == int(out.steps.sum()) < 10 * len(x)  # one cell call per sample per step it ran  # one cell call per sample per step it actually ran


def test_act_loss_and_pondernet_loss_backprop():
    model = small_model()
    model.train()
    x, y = torch.rand(3, 3, 8, 8), torch.randint(0, 2, (3, 8, 8))
    out = model(x, steps=4, halting="act")
    act_loss(out, y, tau=0.01).backward()
    assert model.halting_unit.fc.bias.grad is not None and model.halting_unit.fc.bias.grad.abs() > 0
    model.zero_grad()
    out = model(x, steps=4, halting="ponder", return_steps=True)
    pondernet_loss(out, y, lambda_p=0.3, beta=0.1).backward()
    assert model.halting_unit.fc.bias.grad.abs() > 0
    with pytest.raises(ValueError, match="act"):
        act_loss(model(x, steps=2), y)
