"""Hoisted input computation (``cell.input_drive``) against the un-hoisted forms: every cell's fused
convolution over ``[x, h]`` written literally, the weight-tied model with and without recall against a
Python loop over the fused cell, and the ``ConvRNN`` sequence wrapper against a literal loop over its
cells. fp32 tolerance: atol 1e-5, rtol 1e-4 (the split W_x*x + W_h*h sums in another order than
one convolution over the concatenation)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convrnn
from convrnn.cells import ConvGRUCell, ConvLSTMCell, ElmanCell, ResidualRecurrentCell

TOL = dict(atol=1e-5, rtol=1e-4)
σ = torch.sigmoid


def randomise(module, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


# ---- the un-hoisted forms: one convolution over the concatenation, every step -----------------------

def fused_elman(cell, x, h):
    return torch.tanh(cell.conv(torch.cat([x, h], 1))), None


def fused_gru(cell, x, h):
    r, u = σ(cell.gates(torch.cat([x, h], 1))).chunk(2, 1)
    c = torch.tanh(cell.candidate(torch.cat([x, r * h], 1)))
    return u * h + (1 - u) * c, None


def fused_lstm(cell, x, state):
    h, c = state
    i, f, o, g = cell.gates(torch.cat([x, h], 1)).chunk(4, 1)
    c = σ(f + 1) * c + σ(i) * torch.tanh(g)
    h = σ(o) * torch.tanh(c)
    return h, (h, c)


def fused_residual(cell, x, s):
    return cell.blocks(cell.project(torch.cat([s, x], 1))), None


FUSED = {"elman": (ElmanCell, fused_elman, 1), "convgru": (ConvGRUCell, fused_gru, 1),
         "convlstm": (ConvLSTMCell, fused_lstm, 2), "residual": (ResidualRecurrentCell, fused_residual, 1)}


def fused_step(name, cell, x, state):
    fn = FUSED[name][1]
    if state is None:
        z = torch.zeros(x.shape[0], cell.hidden_channels, *x.shape[-2:])
        state = (z, z) if FUSED[name][2] == 2 else z
    h, new = fn(cell, x, state)
    return h, (h if new is None else new)


@pytest.mark.parametrize("name", sorted(FUSED))
@torch.no_grad()
def test_hoisted_cell_equals_fused_convolution(name):
    cell = randomise(FUSED[name][0](3, 5), scale=0.1 if name == "residual" else 0.3)   # no norm: keep it bounded
    x = torch.randn(2, 3, 7, 6)
    drive = cell.input_drive(x)              # once, reused at every step
    s_h = s_f = None
    for _ in range(4):
        h_h, s_h = cell(x, s_h, drive=drive)
        h_f, s_f = fused_step(name, cell, x, s_f)
        torch.testing.assert_close(h_h, h_f, **TOL)


@pytest.mark.parametrize("name", convrnn.list_cells())
@torch.no_grad()
def test_drive_equals_recomputing_it(name):
    """Every cell, including those whose drive is not a plain conv slice (RGC, LocRNN, hGRU): a drive
    computed once gives the outputs of computing everything from x at every step."""
    kw = {"kernel_size": 3} if name in ("hgru", "locrnn") else {}
    cell = randomise(convrnn.create_cell(name, 3, 6, **kw), scale=0.2)
    x = torch.randn(2, 3, 8, 8)
    d = cell.input_drive(x)
    s1 = s2 = None
    for _ in range(3):
        h1, s1 = cell(x, s1)
        h2, s2 = cell(x, s2, drive=d)
        torch.testing.assert_close(h2, h1, **TOL)


@pytest.mark.parametrize("recall", [True, False])
@pytest.mark.parametrize("name", ["residual", "convgru", "convlstm"])
@torch.no_grad()
def test_model_equals_literal_loop_over_fused_cell(name, recall):
    model = convrnn.create_model("convrnn_dense", cell=name, width=5, recall=recall)
    model = randomise(model, scale=0.1 if name == "residual" else 0.2).eval()   # residual: no norm, keep it bounded
    img = torch.rand(3, 3, 10, 9)
    out = model(img, steps=6, return_steps=True)
    e = model.encoder(img)
    s = None
    for n in range(6):
        x = e if (recall or n == 0) else torch.zeros_like(e)
        h, s = fused_step(name, model.cell, x, s)
        torch.testing.assert_close(out.step_outputs[n], model.readout(h), **TOL)


@torch.no_grad()
def test_model_with_halting_shrinks_the_drive_with_the_batch():
    """Samples halting at different steps leave the batch together with their drive rows."""
    model = randomise(convrnn.create_model("convrnn_dense", cell="convgru", width=4), scale=0.4).eval()
    img = torch.rand(6, 3, 8, 8)
    shrunk = model(img, steps=12, halting=convrnn.Convergence(tol=0.05), shrink=True)
    full = model(img, steps=12, halting=convrnn.Convergence(tol=0.05), shrink=False)
    assert len(set(shrunk.steps.tolist())) > 1, "the test needs samples that halt at different steps"
    torch.testing.assert_close(shrunk.output, full.output, **TOL)
    assert torch.equal(shrunk.steps, full.steps)


class PlainCell(convrnn.cells.ConvRNNCell):
    """A user's cell without ``drive=``: the model must still run it."""

    def __init__(self, cin, hid):
        super().__init__(cin, hid)
        self.conv = torch.nn.Conv2d(cin + hid, hid, 3, padding=1)

    def forward(self, x, state=None):
        h = self._prepare(x, state)
        h = torch.tanh(self.conv(torch.cat([x, h], 1)))
        return h, h


def test_cell_without_drive_still_runs_in_models_and_sequences():
    model = convrnn.RecurrentModel(width=4)
    model.cell = PlainCell(4, 4)
    assert model(torch.rand(2, 3, 8, 8), steps=3).output.shape == (2, 2, 8, 8)
    seq = convrnn.ConvRNN("elman", 3, 4)
    seq.layers[0], seq._hoist = PlainCell(3, 4), False
    out, _ = seq(torch.rand(2, 4, 3, 8, 8))
    assert out.shape == (2, 4, 4, 8, 8)


# ---- the sequence wrapper -------------------------------------------------------------------------------

def literal_sequence(seq, x, state=None):
    outs_all, last = x, []
    for i, cell in enumerate(seq.layers):
        s = None if state is None else state[i]
        outs = []
        for t in range(outs_all.shape[1]):
            h, s = cell(outs_all[:, t], s)       # no drive: everything from x, one frame at a time
            outs.append(h)
        outs_all = torch.stack(outs, 1)
        last.append(s)
    return outs_all, last


@pytest.mark.parametrize("batch_inputs", [False, True])
@pytest.mark.parametrize("name", convrnn.list_cells())
@torch.no_grad()
def test_convrnn_equals_literal_loop(name, batch_inputs):
    """Per-frame fused steps (the CPU default) and the input convolution batched over all B*T frames
    (the GPU default) both equal a literal loop over the cell."""
    kw = {"kernel_size": 3} if name in ("hgru", "locrnn") else {}
    seq = convrnn.ConvRNN(name, 3, 5, num_layers=2, batch_inputs=batch_inputs, **kw)
    seq = randomise(seq, scale=0.1 if name == "residual" else 0.2)     # residual: no norm, keep it bounded
    x = torch.randn(2, 4, 3, 6, 7)
    out, state = seq(x)
    ref, ref_state = literal_sequence(seq, x)
    assert out.shape == (2, 4, 5, 6, 7) and len(state) == 2
    torch.testing.assert_close(out, ref, **TOL)
    # continuing from the returned state = running the concatenated sequence
    x2 = torch.randn(2, 3, 3, 6, 7)
    out2, _ = seq(x2, state)
    ref_full, _ = literal_sequence(seq, torch.cat([x, x2], 1))
    torch.testing.assert_close(out2, ref_full[:, 4:], **TOL)


@torch.no_grad()
def test_convrnn_convlstm_equals_fused_equations():
    seq = randomise(convrnn.ConvRNN("convlstm", 3, 4))
    x = torch.randn(2, 5, 3, 8, 8)
    out, (state,) = seq(x)
    s = None
    for t in range(5):
        h, s = fused_step("convlstm", seq.layers[0], x[:, t], s)
        torch.testing.assert_close(out[:, t], h, **TOL)
    torch.testing.assert_close(state[1], s[1], **TOL)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(B=st.integers(1, 3), T=st.integers(1, 4), layers=st.integers(1, 3), hw=st.integers(1, 6),
       cell=st.sampled_from(["convgru", "rgc"]))
def test_convrnn_batched_inputs_same_values_and_gradients(B, T, layers, hw, cell):
    """Shapes, and the batched-input path's outputs and input gradients equal the per-frame path's
    (RGC: a tuple drive)."""
    torch.manual_seed(0)
    seq = convrnn.ConvRNN(cell, 2, 3, num_layers=layers)
    x = torch.randn(B, T, 2, hw, hw, requires_grad=True)
    out, state = seq(x)
    assert out.shape == (B, T, 3, hw, hw) and len(state) == layers
    (g,) = torch.autograd.grad(out.square().sum(), x)
    seq.batch_inputs = True
    out_b, _ = seq(x)
    (g_b,) = torch.autograd.grad(out_b.square().sum(), x)
    torch.testing.assert_close(out_b, out, **TOL)
    torch.testing.assert_close(g_b, g, **TOL)


@pytest.mark.parametrize("bad, msg", [
    (torch.randn(2, 3, 8, 8), "batch, time, channels"),
    (torch.randn(2, 0, 3, 8, 8), "empty"),
    (torch.randn(2, 4, 5, 8, 8), "expected 3 input channels"),
])
def test_convrnn_bad_input(bad, msg):
    with pytest.raises(ValueError, match=msg):
        convrnn.ConvRNN("convlstm", 3, 4)(bad)


def test_convrnn_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        convrnn.ConvRNN("convlstm", 3, 4, num_layers=0)
    with pytest.raises(ValueError, match="unknown cell"):
        convrnn.ConvRNN("nope", 3, 4)
    with pytest.raises(ValueError, match="batch_inputs must be None, True or False"):
        convrnn.ConvRNN("convgru", 3, 4, batch_inputs="yes")
    with pytest.raises(ValueError, match="list of 1 per-layer"):
        convrnn.ConvRNN("convgru", 3, 4)(torch.randn(1, 2, 3, 4, 4), state=torch.zeros(1, 4, 4, 4))
