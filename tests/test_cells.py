"""Each cell against a slow, literal transcription of its equations (separate convolutions per term,
as written in the paper), plus shapes, dtypes, layouts and errors."""
import pytest
import torch
import torch.nn.functional as F

import convrnn
from convrnn.cells import (ConvGRUCell, ConvLSTMCell, ElmanCell, HGRUCell, LocRNNCell, ReciprocalGatedCell,
                           ResidualRecurrentCell)

σ = torch.sigmoid


def c2d(x, w, b=None):
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def randomise(cell):
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return cell


def ref_elman(cell, x, h):
    cin = cell.in_channels
    w, b = cell.conv.weight, cell.conv.bias
    return torch.tanh(c2d(x, w[:, :cin]) + c2d(h, w[:, cin:]) + b.view(1, -1, 1, 1))


def ref_gru(cell, x, h):
    cin, hid = cell.in_channels, cell.hidden_channels
    wg, bg = cell.gates.weight, cell.gates.bias
    wr, wu = wg[:hid], wg[hid:]
    r = σ(c2d(x, wr[:, :cin]) + c2d(h, wr[:, cin:]) + bg[:hid].view(1, -1, 1, 1))
    u = σ(c2d(x, wu[:, :cin]) + c2d(h, wu[:, cin:]) + bg[hid:].view(1, -1, 1, 1))
    wc, bc = cell.candidate.weight, cell.candidate.bias
    hh = torch.tanh(c2d(x, wc[:, :cin]) + c2d(r * h, wc[:, cin:]) + bc.view(1, -1, 1, 1))
    return u * h + (1 - u) * hh


def ref_lstm(cell, x, h, c):
    cin, hid = cell.in_channels, cell.hidden_channels
    w, b = cell.gates.weight, cell.gates.bias
    g = [c2d(x, w[k * hid:(k + 1) * hid, :cin]) + c2d(h, w[k * hid:(k + 1) * hid, cin:])
         + b[k * hid:(k + 1) * hid].view(1, -1, 1, 1) for k in range(4)]
    i, f, o, gg = g
    c = σ(f + 1) * c + σ(i) * torch.tanh(gg)
    return σ(o) * torch.tanh(c), c


def ref_rgc(cell, x, h, c, fb=None, raw=None):
    hid = cell.hidden_channels
    wc, bc = cell.from_c.weight, cell.from_c.bias
    wh, bh = cell.from_h.weight, cell.from_h.bias
    W_cc, W_ch = (wc[:hid], bc[:hid]), (wc[hid:], bc[hid:])
    W_hc, W_hh = (wh[:hid], bh[:hid]), (wh[hid:], bh[hid:])
    xc = c2d(x, cell.from_x.weight, cell.from_x.bias)
    gate_h = c2d(c, *W_ch)
    if raw is not None:
        gate_h = gate_h + c2d(raw, cell.from_raw.weight, cell.from_raw.bias)
    drive = x + (fb if fb is not None else 0)
    c_new = F.elu((1 - σ(c2d(c, *W_cc))) * c + (1 - σ(c2d(h, *W_hc))) * xc)
    h_new = F.elu((1 - σ(c2d(h, *W_hh))) * h + (1 - σ(gate_h)) * drive)
    return h_new, c_new


def ref_hgru(cell, x, h2, t):
    W = 0.5 * (cell.weight + cell.weight.transpose(0, 1))
    g1 = σ(c2d(h2, cell.u1.weight, cell.u1.bias))
    h1 = torch.tanh(x - (cell.alpha * h2 + cell.mu) * c2d(g1 * h2, W))
    g2 = σ(c2d(h1, cell.u2.weight, cell.u2.bias))
    c2 = c2d(h1, W)
    h2_hat = torch.tanh(cell.kappa * h1 + cell.beta * c2 + cell.omega * (h1 * c2))
    return cell.eta[min(t, cell.timesteps - 1)] * ((1 - g2) * h2 + g2 * h2_hat)


def ref_locrnn(cell, x, E, I):
    hid = cell.hidden_channels
    wx, bx = cell.from_x.weight, cell.from_x.bias
    part = lambda k: c2d(x, wx[k * hid:(k + 1) * hid], bx[k * hid:(k + 1) * hid])
    wi, we = cell.gate_i.weight, cell.gate_e.weight
    gI = σ(part(0) + c2d(E, wi[:, :hid]) + c2d(I, wi[:, hid:]))
    gn = lambda z, norm: F.group_norm(z, 1, norm.weight, norm.bias, norm.eps)
    I = (1 - gI) * I + gI * torch.relu(gn(part(2) + c2d(E, cell.w_ei.weight), cell.norm_i))
    gE = σ(part(1) + c2d(E, we[:, :hid]) + c2d(I, we[:, hid:]))
    E = (1 - gE) * E + gE * torch.relu(gn(part(3) + c2d(E, cell.w_ee.weight) - c2d(I, cell.w_ie.weight), cell.norm_e))
    return E, I


def ref_residual(cell, x, s):
    hid = cell.hidden_channels
    w = cell.project.weight
    z = c2d(s, w[:, :hid]) + c2d(x, w[:, hid:])
    for blk in cell.blocks:
        z = torch.relu(z + c2d(torch.relu(c2d(z, blk.conv1.weight)), blk.conv2.weight))
    return z


def run_steps(cell, x, steps=3, **kw):
    state, outs = None, []
    for _ in range(steps):
        o, state = cell(x, state, **kw)
        outs.append(o)
    return outs


@torch.no_grad()
def test_elman_matches_reference():
    cell = randomise(ElmanCell(3, 5))
    x = torch.randn(2, 3, 7, 6)
    h = torch.zeros(2, 5, 7, 6)
    for o in run_steps(cell, x):
        h = ref_elman(cell, x, h)
        torch.testing.assert_close(o, h)


@torch.no_grad()
def test_elman_time_decay_matches_reference():
    """decay=τ, lateral=False: h' = τ h + (1 - τ) relu(W_x * x + b), no recurrent weights."""
    tau = 0.7
    cell = randomise(ElmanCell(3, 5, activation="relu", decay=tau, lateral=False))
    assert cell.conv.weight.shape == (5, 3, 3, 3)
    x = torch.randn(2, 3, 7, 6)
    h = torch.zeros(2, 5, 7, 6)
    for o in run_steps(cell, x, steps=4):
        h = tau * h + (1 - tau) * torch.relu(c2d(x, cell.conv.weight) + cell.conv.bias.view(1, -1, 1, 1))
        torch.testing.assert_close(o, h)
    # a leaky Elman keeps its lateral weights
    cell = randomise(ElmanCell(3, 5, decay=0.5))
    h = torch.zeros(2, 5, 7, 6)
    for o in run_steps(cell, x):
        h = 0.5 * h + 0.5 * ref_elman(cell, x, h)
        torch.testing.assert_close(o, h)
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="decay"):
            ElmanCell(3, 5, decay=bad)


@torch.no_grad()
def test_convgru_matches_reference():
    cell = randomise(ConvGRUCell(3, 5))
    x = torch.randn(2, 3, 7, 6)
    h = torch.zeros(2, 5, 7, 6)
    for o in run_steps(cell, x):
        h = ref_gru(cell, x, h)
        torch.testing.assert_close(o, h)


@torch.no_grad()
def test_convlstm_matches_reference():
    cell = randomise(ConvLSTMCell(3, 5))
    x = torch.randn(2, 3, 7, 6)
    h = c = torch.zeros(2, 5, 7, 6)
    for o in run_steps(cell, x):
        h, c = ref_lstm(cell, x, h, c)
        torch.testing.assert_close(o, h)


@pytest.mark.parametrize("with_extras", [False, True])
@torch.no_grad()
def test_rgc_matches_reference(with_extras):
    cell = randomise(ReciprocalGatedCell(5, 5, raw_channels=3 if with_extras else 0))
    x = torch.randn(2, 5, 6, 6)
    kw = dict(feedback=torch.randn(2, 5, 6, 6), raw=torch.randn(2, 3, 6, 6)) if with_extras else {}
    h = c = torch.zeros(2, 5, 6, 6)
    for o in run_steps(cell, x, **kw):
        h, c = ref_rgc(cell, x, h, c, kw.get("feedback"), kw.get("raw"))
        torch.testing.assert_close(o, h)


def test_rgc_bypass_is_identity_when_sizes_agree():
    cell = ReciprocalGatedCell(4, 4)
    assert isinstance(cell.bypass, torch.nn.Identity)
    assert not isinstance(ReciprocalGatedCell(3, 4).bypass, torch.nn.Identity)


@torch.no_grad()
def test_hgru_matches_reference():
    cell = randomise(HGRUCell(4, 4, kernel_size=5, timesteps=3))
    x = torch.randn(2, 4, 9, 8)
    h = torch.zeros(2, 4, 9, 8)
    for t, o in enumerate(run_steps(cell, x, steps=5)):  # steps past `timesteps` reuse the last eta
        h = ref_hgru(cell, x, h, t)
        torch.testing.assert_close(o, h)


def test_hgru_chronos_init_is_applied_and_kernel_symmetric():
    T = 8
    cell = HGRUCell(6, 6, kernel_size=5, timesteps=T)
    b1 = cell.u1.bias.detach()
    assert torch.all(b1 >= 0) and torch.all(b1 <= torch.log(torch.tensor(T - 1.0)) + 1e-6)
    assert b1.std() > 0  # drawn, not left at the default init (which is centred on 0)
    torch.testing.assert_close(cell.u2.bias.detach(), -b1)
    W = cell.horizontal()
    torch.testing.assert_close(W, W.transpose(0, 1))


@torch.no_grad()
def test_locrnn_matches_reference():
    cell = randomise(LocRNNCell(3, 4))
    x = torch.randn(2, 3, 9, 9)
    E = I = torch.zeros(2, 4, 9, 9)
    for o in run_steps(cell, x):
        E, I = ref_locrnn(cell, x, E, I)
        torch.testing.assert_close(o, E, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_residual_matches_reference():
    cell = randomise(ResidualRecurrentCell(3, 5))
    x = torch.randn(2, 3, 6, 7)
    s = torch.zeros(2, 5, 6, 7)
    for o in run_steps(cell, x):
        s = ref_residual(cell, x, s)
        torch.testing.assert_close(o, s, atol=1e-5, rtol=1e-4)


CELLS = convrnn.list_cells()


def make(name, cin, hid):
    kw = {"kernel_size": 3} if name in ("hgru", "locrnn") else {}
    return convrnn.create_cell(name, cin, hid, **kw)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 4), (2, 16, 9)])
def test_shapes_grid_and_zero_state_equivalence(name, shape):
    B, H, W = shape
    cell = make(name, 3, 6).eval()
    x = torch.randn(B, 3, H, W)
    out, state = cell(x)
    assert out.shape == (B, 6, H, W)
    out2, _ = cell(x, cell.init_state(x))
    torch.testing.assert_close(out, out2)
    out3, _ = cell(x, state)
    assert out3.shape == out.shape


@pytest.mark.parametrize("name", CELLS)
def test_bf16_close_to_fp32(name):
    cell = make(name, 3, 6).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = run_steps(cell, x)[-1]
        out = run_steps(cell.to(torch.bfloat16), x.bfloat16())[-1]
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


@pytest.mark.parametrize("name", CELLS)
def test_channels_last_same_result_and_layout(name):
    cell = make(name, 3, 6).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = run_steps(cell, x)[-1]
        cell_cl = cell.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        out = run_steps(cell_cl, xc)[-1]
        state = cell_cl.init_state(xc)
    s0 = state if isinstance(state, torch.Tensor) else state[0]
    assert s0.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", CELLS)
def test_gradients_reach_every_parameter(name):
    cell = make(name, 3, 4)
    x = torch.randn(2, 3, 6, 6)
    out = run_steps(cell, x, steps=3)[-1]
    out.square().sum().backward()
    missing = [n for n, p in cell.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    if name == "rgc":
        missing = [n for n in missing if not n.startswith("from_raw")]
    assert not missing, missing


@pytest.mark.parametrize("bad, err, msg", [
    (torch.randn(3, 8, 8), ValueError, "4 dims"),
    (torch.randn(1, 4, 8, 8), ValueError, "expected 3 channels"),
    (torch.ones(1, 3, 8, 8, dtype=torch.long), TypeError, "floating-point"),
    (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
    (torch.full((1, 3, 8, 8), float("inf")), ValueError, "NaN or inf"),
])
@pytest.mark.parametrize("name", CELLS)
def test_bad_input_clear_errors(name, bad, err, msg):
    with pytest.raises(err, match=msg):
        make(name, 3, 4)(bad)


def test_state_mismatch_error():
    cell = ConvGRUCell(3, 4)
    with pytest.raises(ValueError, match="does not match"):
        cell(torch.randn(2, 3, 8, 8), torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="2 tensor"):
        ConvLSTMCell(3, 4)(torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 8, 8))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="odd"):
        ConvGRUCell(3, 4, kernel_size=2)
    with pytest.raises(ValueError, match="positive int"):
        ConvGRUCell(0, 4)
    with pytest.raises(ValueError, match="activation"):
        ElmanCell(3, 4, activation="gelu")
