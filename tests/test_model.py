import pytest
import torch

import convrnn
from convrnn import RecurrentConfig, RecurrentModel
from convrnn.losses import cross_entropy, progressive_loss
from convrnn.registry import _CELLS


def tiny(**kw):
    torch.manual_seed(0)
    return convrnn.create_model("convrnn_dense", width=6, **kw)


def test_registry_lists_and_creates_everything():
    assert set(convrnn.list_cells()) >= {"elman", "convgru", "convlstm", "rgc", "hgru", "locrnn", "residual"}
    assert "dtnet_recall_mazes" in convrnn.list_models()
    assert convrnn.list_cells("conv*") == ["convgru", "convlstm"]
    m = convrnn.create_model("dtnet_recall_mazes", width=8)
    assert m.config.width == 8 and m.config.cell == "residual"


def test_registry_errors_name_valid_choices():
    with pytest.raises(ValueError, match="Did you mean 'convgru'.*Valid cells: convgru, convlstm"):
        convrnn.create_cell("convgr", 3, 4)
    with pytest.raises(ValueError, match="unknown model 'nope'.*dtnet_recall_mazes"):
        convrnn.create_model("nope")
    with pytest.raises(ValueError, match="unknown model config key.*'widht' \\(did you mean 'width'"):
        convrnn.create_model("convrnn_dense", widht=3)
    with pytest.raises(ValueError, match="unknown cell 'convgru' key.*'kernal'"):
        convrnn.create_cell("convgru", 3, 4, kernal=3)
    with pytest.raises(ValueError, match="unknown head"):
        convrnn.create_model("convrnn_dense", head="sideways")
    with pytest.raises(ValueError, match="unknown halting policy 'actt'"):
        tiny()(torch.rand(1, 3, 8, 8), steps=2, halting="actt")


def test_register_new_cell_and_model():
    @convrnn.register_cell("test_identity_cell")
    class Ident(convrnn.cells.ConvRNNCell):
        def forward(self, x, state=None):
            s = self._prepare(x, state)
            return s + x, s + x

    @convrnn.register_model("test_identity_model")
    def make(**kw):
        return RecurrentModel(RecurrentConfig(cell="test_identity_cell", width=4, **kw))

    try:
        out = convrnn.create_model("test_identity_model")(torch.rand(2, 3, 5, 5), steps=3)
        assert out.output.shape == (2, 2, 5, 5)
        with pytest.raises(ValueError, match="already registered"):
            convrnn.register_cell("test_identity_cell")(convrnn.cells.ConvGRUCell)
    finally:
        _CELLS.pop("test_identity_cell")
        convrnn.registry._MODELS.pop("test_identity_model")


def test_steps_chosen_at_call_time_and_return_steps():
    m = tiny().eval()
    x = torch.rand(2, 3, 10, 10)
    with torch.no_grad():
        all_steps = m(x, steps=25, return_steps=True)
        five = m(x, steps=5)
    assert all_steps.step_outputs.shape == (25, 2, 2, 10, 10)
    assert all_steps.steps.tolist() == [25, 25]
    torch.testing.assert_close(five.output, all_steps.step_outputs[4])
    torch.testing.assert_close(all_steps.output, all_steps.step_outputs[-1])


def test_state_continuation_equals_one_long_run():
    m = tiny().eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        long = m(x, steps=7)
        first = m(x, steps=3)
        rest = m(x, steps=4, state=first.state)
    torch.testing.assert_close(rest.output, long.output)


def test_recall_off_feeds_input_once():
    m = tiny(recall=False).eval()
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = m(x, steps=4, tbptt=2)
    out.output.sum().backward()
    assert x.grad is None or torch.all(x.grad == 0)  # state detached after the only step that saw x
    x.grad = None
    m(x, steps=4).output.sum().backward()
    assert x.grad.abs().sum() > 0


def test_tbptt_keeps_gradient_within_each_window():
    m = tiny()
    x = torch.rand(2, 3, 8, 8)
    for tb in (3, 4, 5):
        m.zero_grad()
        m(x, steps=12, tbptt=tb).output.square().sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.cell.parameters()), tb


def test_continuation_without_recall_does_not_show_the_image_again():
    m = tiny(recall=False).eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        long = m(x, steps=7).output
        rest = m(x, steps=4, state=m(x, steps=3).state).output
    torch.testing.assert_close(rest, long)


def test_bad_steps_and_inputs():
    m = tiny()
    with pytest.raises(ValueError, match="steps: expected >= 1"):
        m(torch.rand(1, 3, 8, 8), steps=0)
    with pytest.raises(TypeError, match="positive int"):
        m(torch.rand(1, 3, 8, 8), steps=2.5)
    with pytest.raises(ValueError, match="image: expected 3 channels"):
        m(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="image: contains NaN"):
        m(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch is empty"):
        m(torch.zeros(0, 3, 8, 8))


def test_config_round_trip_and_unknown_keys():
    cfg = RecurrentConfig(width=9, cell="convlstm", cell_kwargs={"kernel_size": 5})
    assert RecurrentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config key"):
        RecurrentConfig.from_dict({**cfg.to_dict(), "depth": 3})


@pytest.mark.parametrize("cell", ["convgru", "rgc", "locrnn"])
def test_overfits_one_batch(cell):
    m = tiny(cell=cell, cell_kwargs={"kernel_size": 3})
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 2, (4, 8, 8))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = cross_entropy(m(x, steps=3).output, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_progressive_loss_matches_manual_split():
    m = tiny().eval()
    x, y = torch.rand(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8))
    g = torch.Generator().manual_seed(3)
    loss, full = progressive_loss(m, x, y, max_steps=6, alpha=0.5, generator=g)
    g = torch.Generator().manual_seed(3)
    n = int(torch.randint(0, 6, (1,), generator=g))
    k = int(torch.randint(1, 6 - n + 1, (1,), generator=g))
    with torch.no_grad():
        ref_prog = m(x, steps=n + k).output  # detaching does not change the forward value
        ref_full = m(x, steps=6).output
    expected = 0.5 * cross_entropy(ref_full, y) + 0.5 * cross_entropy(ref_prog, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert full.steps.tolist() == [6, 6]
    loss.backward()


@pytest.mark.parametrize("recall", [True, False])
def test_progressive_loss_reusing_the_full_pass_has_the_literal_gradient(recall):
    """The full pass split at n and the progressive pass started from its detached state give the loss
    and gradients of Bansal et al.'s literal recipe (n fresh steps without gradient), for every n."""
    from convrnn.cells.base import map_state
    for n_seed in range(6):
        m = convrnn.create_model("convrnn_dense", cell="convgru", width=4, recall=recall)
        x, y = torch.rand(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8))
        loss, _ = progressive_loss(m, x, y, max_steps=5, alpha=0.3, generator=torch.Generator().manual_seed(n_seed))
        grads = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)
        g = torch.Generator().manual_seed(n_seed)
        n = int(torch.randint(0, 5, (1,), generator=g))
        k = int(torch.randint(1, 5 - n + 1, (1,), generator=g))
        ref_full = m(x, steps=5).output
        state = None
        if n:
            with torch.no_grad():
                state = map_state(m(x, steps=n).state, torch.Tensor.detach)
        ref = 0.7 * cross_entropy(ref_full, y) + 0.3 * cross_entropy(m(x, steps=k, state=state).output, y)
        ref_grads = torch.autograd.grad(ref, list(m.parameters()), allow_unused=True)
        torch.testing.assert_close(loss, ref, atol=1e-6, rtol=1e-5)
        for a, b in zip(grads, ref_grads):
            if b is None:
                assert a is None or not a.any()
            else:
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_masked_cross_entropy_ignores_masked_pixels():
    logits = torch.randn(2, 2, 4, 4)
    y = torch.randint(0, 2, (2, 4, 4))
    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1
    a = cross_entropy(logits, y, weight_mask=mask)
    y2 = y.clone()
    y2[:, 2:] = 1 - y2[:, 2:]
    assert a.item() == pytest.approx(cross_entropy(logits, y2, weight_mask=mask).item())
    assert a.item() != pytest.approx(cross_entropy(logits, y).item())


def test_bf16_and_channels_last_model():
    m = tiny().eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        ref = m(x, steps=3, halting="act").output
        out = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), steps=3,
                                                       halting="act").output
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        ref_fixed = tiny().eval()(x, steps=3).output
        o16 = tiny().eval().to(torch.bfloat16)(x.bfloat16(), steps=3).output
    assert o16.dtype == torch.float32  # accumulated in float32
    torch.testing.assert_close(o16, ref_fixed, atol=0.05, rtol=0.05)


def test_torch_compile_smoke():
    cell = convrnn.create_cell("convgru", 3, 4).eval()
    compiled = torch.compile(cell, backend="eager")
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        a, s = compiled(x)
        a, _ = compiled(x, s)
        b, s2 = cell(x)
        b, _ = cell(x, s2)
    torch.testing.assert_close(a, b)


def test_all_steps_loss_is_the_mean_of_per_step_losses():
    from convrnn.losses import all_steps_loss
    m = tiny().eval()
    x, y = torch.rand(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8))
    out = m(x, steps=4, return_steps=True, shrink=False)
    expected = sum(cross_entropy(out.step_outputs[n], y) for n in range(4)) / 4
    assert all_steps_loss(out, y).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="return_steps"):
        all_steps_loss(m(x, steps=2), y)
