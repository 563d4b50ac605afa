"""Tests for multi-area networks unrolled biologically (models/multiarea.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convrnn
from convrnn.models import multiarea as multiarea_mod  # noqa: F401  (registers the presets)
from convrnn.models.multiarea import MultiAreaConfig, MultiAreaNetwork

SMALL = dict(width=0.125, num_classes=5)      # greco at 4/8/16 channels


def _record(model):
    """Hook every area's ``output``; returns {name: [per-step outputs]} and the hook handles."""
    rec = {n: [] for n in model.areas}
    handles = [a.output.register_forward_hook(lambda m, i, o, n=n: rec[n].append(o.detach().clone()))
               for n, a in model.areas.items()]
    return rec, handles


def _run(model, x, **kw):
    rec, handles = _record(model)
    res = model(x, return_steps=True, **kw)
    for h in handles:
        h.remove()
    return res, rec


def _zero_biases(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and "halting" not in name:
                p.zero_()


def _first_diff(a: list, b: list) -> int | None:
    """First step at which two per-step sequences differ at all (same ops on CPU: bit-identical before)."""
    for t, (u, v) in enumerate(zip(a, b)):
        if not torch.equal(u, v):
            return t
    return None


# ---- unrolling semantics ------------------------------------------------------------------------

def test_matches_hand_unrolled_two_area_linear_network():
    """A1 (1x1 conv, no cell) -> A2 (1x1 conv, max-pool 2, no cell), feedback A2 -> A1 (add).
    Positive weights, biases and images keep every ReLU linear."""
    cfg = MultiAreaConfig(in_channels=2, num_classes=3, steps=6, t_on=3, blank=[0.5, 0.25],
                          areas=[dict(name="A1", channels=2, kernel=1),
                                 dict(name="A2", channels=2, kernel=1, pool=2)],
                          feedback=[dict(source="A2", target="A1", rule="add")])
    model = MultiAreaNetwork(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand_like(p) * 0.5 + 0.1)
    x = torch.rand(2, 2, 8, 8)
    res, rec = _run(model, x)

    A1, A2 = model.areas["A1"], model.areas["A2"]
    blank = torch.tensor([0.5, 0.25]).view(1, 2, 1, 1).expand_as(x)
    a1_prev = a2_prev = None
    logits = []
    for t in range(6):
        frame = x if t < 3 else blank
        a1 = F.conv2d(frame, A1.conv.weight, A1.conv.bias)
        if a2_prev is not None:        # one step of delay on the feedback edge, absent at t = 0
            a1 = a1 + F.interpolate(F.conv2d(a2_prev, A1.feedback["A2"].weight), size=(8, 8), mode="bilinear",
                                    align_corners=False)
        a2_in = a1_prev if a1_prev is not None else torch.zeros_like(a1)   # one step of delay
        a2 = F.max_pool2d(F.conv2d(a2_in, A2.conv.weight, A2.conv.bias), 2)
        torch.testing.assert_close(rec["A1"][t], a1)
        torch.testing.assert_close(rec["A2"][t], a2)
        logits.append(model.readout.fc(a2.mean(dim=(2, 3))))
        a1_prev, a2_prev = a1, a2
    torch.testing.assert_close(res.step_outputs, torch.stack(logits))
    torch.testing.assert_close(res.output, logits[-1])
    assert res.step_outputs.shape == (6, 2, 3) and res.steps.tolist() == [6, 6]


def test_input_change_at_step_t_reaches_area_k_at_t_plus_k_minus_1():
    cfg = MultiAreaConfig(in_channels=1, num_classes=2, steps=8, blank=0.5,
                          areas=[dict(name=f"A{k}", channels=4, cell="elman") for k in range(1, 5)])
    model = MultiAreaNetwork(cfg).eval()
    x = torch.rand(2, 1, 8, 8)
    # t_on=3 vs t_on=4: the frames differ at step 3 only
    r3, rec3 = _run(model, x, t_on=3)
    r4, rec4 = _run(model, x, t_on=4)
    for k in range(1, 5):
        assert _first_diff(rec3[f"A{k}"], rec4[f"A{k}"]) == 3 + k - 1
    assert _first_diff(list(r3.step_outputs), list(r4.step_outputs)) == 3 + 4 - 1


def test_blank_after_t_on_and_blank_value():
    cfg = MultiAreaConfig(in_channels=3, num_classes=2, steps=5, t_on=2, blank=0.3,
                          areas=[dict(name="A1", channels=4),                     # feedforward only
                                 dict(name="A2", channels=4, cell="convgru")])
    model = MultiAreaNetwork(cfg).eval()
    x1, x2 = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    _, rec1 = _run(model, x1)
    _, rec2 = _run(model, x2)
    a1 = model.areas["A1"]
    blank_out = torch.relu(a1.conv(torch.full_like(x1, 0.3)))
    for t in range(5):
        if t < 2:
            assert not torch.allclose(rec1["A1"][t], rec2["A1"][t])
        else:                                   # after t_on the first area sees the blank only
            torch.testing.assert_close(rec1["A1"][t], rec2["A1"][t])
            torch.testing.assert_close(rec1["A1"][t], blank_out)
    # the cell area still remembers the image
    assert not torch.allclose(rec1["A2"][4], rec2["A2"][4])
    # t_on=None: the image at every step
    _, rec3 = _run(model, x1, t_on=None)
    torch.testing.assert_close(rec3["A1"][4], torch.relu(a1.conv(x1)))


# ---- feedback ----------------------------------------------------------------------------------

def _ff_fb_pair(rule="add", **kw):
    ff = convrnn.create_model("greco_ff", dropout=0.0, steps=8, t_on=8, **SMALL, **kw).eval()
    fb = convrnn.create_model("greco_fb", dropout=0.0, steps=8, t_on=8, feedback_rule=rule, **SMALL, **kw).eval()
    missing, unexpected = fb.load_state_dict(ff.state_dict(), strict=False)
    assert not unexpected and missing and all(".feedback." in k or ".post." in k for k in missing)
    return ff, fb


def test_feedback_changes_outputs_only_after_source_is_nonzero():
    ff, fb = _ff_fb_pair()
    _zero_biases(ff)
    _zero_biases(fb)
    x = torch.rand(2, 3, 16, 16)
    rff, recff = _run(ff, x)
    rfb, recfb = _run(fb, x)
    # with zero biases L3 is exactly zero until the image arrives (step 2)
    first_nonzero = next(t for t, o in enumerate(recfb["L3"]) if o.abs().sum() > 0)
    assert first_nonzero == 2
    assert _first_diff(recff["L1"], recfb["L1"]) is None
    assert _first_diff(recff["L2"], recfb["L2"]) == first_nonzero + 1
    assert _first_diff(recff["L3"], recfb["L3"]) == first_nonzero + 2
    assert _first_diff(list(rff.step_outputs), list(rfb.step_outputs)) == first_nonzero + 2


@pytest.mark.parametrize("rule", ["add", "gain"])
def test_feedback_only_when_present(rule):
    ff, fb = _ff_fb_pair(rule)
    x = torch.rand(2, 3, 16, 16)
    out_ff = ff(x, return_steps=True).step_outputs
    out_fb = fb(x, return_steps=True).step_outputs
    # biases make L3 non-zero at step 0, so L2 changes from step 1, the logits from step 2
    torch.testing.assert_close(out_fb[:2], out_ff[:2])
    assert not torch.allclose(out_fb[2:], out_ff[2:])
    with torch.no_grad():                       # a silent feedback edge is no edge
        fb.areas["L2"].feedback["L3"].weight.zero_()
    torch.testing.assert_close(fb(x, return_steps=True).step_outputs, out_ff)


@pytest.mark.parametrize("rule", ["add", "gain", "concat"])
def test_gradients_reach_feedback_convs(rule):
    _, fb = _ff_fb_pair(rule)
    fb.train()
    fb(torch.rand(2, 3, 16, 16), steps=5).output.sum().backward()
    g = fb.areas["L2"].feedback["L3"].weight.grad
    assert g is not None and g.abs().sum() > 0
    if rule == "concat":
        assert fb.areas["L2"].post.weight.grad.abs().sum() > 0


def test_rgc_add_feedback_goes_through_cell_feedback_argument():
    model = convrnn.create_model("rgc_intermediate", width=0.125, num_classes=4, steps=8)
    area = model.areas["conv4"]
    assert area._cell_feedback and set(area.feedback) == {"conv6", "conv7"}
    calls = []
    h = area.cell.register_forward_pre_hook(lambda m, a, kw: calls.append(kw.get("feedback") is not None),
                                            with_kwargs=True)
    model(torch.rand(2, 3, 32, 32)).output.sum().backward()
    h.remove()
    assert calls[0] is False and all(calls[1:])     # absent at t = 0, present after
    assert area.feedback["conv7"].weight.grad.abs().sum() > 0


# ---- hooks, presets, dropout, halting ----------------------------------------------------------

def test_output_hooks_fire_once_per_step_with_area_shapes():
    model = convrnn.create_model("greco_fb", **SMALL)
    res, rec = _run(model, torch.rand(2, 3, 16, 16), steps=7)
    shapes = {"L1": (2, 4, 8, 8), "L2": (2, 8, 4, 4), "L3": (2, 16, 2, 2)}
    for n, outs in rec.items():
        assert len(outs) == 7 and all(tuple(o.shape) == shapes[n] for o in outs)
    assert model.spatial_sizes(16, 16) == {"L1": (8, 8), "L2": (4, 4), "L3": (2, 2)}
    assert res.step_outputs.shape == (7, 2, 5)


PRESETS = {"greco_ff": dict(width=0.125), "greco_fb": dict(width=0.125), "rgc_shallow": dict(width=0.125),
           "rgc_intermediate": dict(width=0.125), "cornet_rt": dict(width=0.125)}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_run(name):
    assert name in convrnn.list_models()
    model = convrnn.create_model(name, num_classes=7, **PRESETS[name])
    res = model(torch.rand(2, 3, 32, 32), return_steps=True)
    steps = model.config.steps
    assert res.output.shape == (2, 7) and res.step_outputs.shape == (steps, 2, 7)
    assert torch.isfinite(res.step_outputs).all()
    torch.testing.assert_close(res.output, res.step_outputs[-1])


def test_preset_defaults():
    c = convrnn.create_model("rgc_shallow", width=0.125).config
    assert len(c.areas) == 6 and [a["cell"] for a in c.areas] == [None] * 3 + ["rgc"] * 3
    assert (c.steps, c.t_on, c.blank) == (16, 12, 0.5)
    assert convrnn.create_model("rgc_intermediate", width=0.125).config.feedback
    c = convrnn.create_model("cornet_rt", width=0.125).config
    assert c.area_names == ["V1", "V2", "V4", "IT"] and c.steps == 5
    ff, fb = convrnn.create_model("greco_ff").config, convrnn.create_model("greco_fb").config
    assert ff.feedback == [] and fb.feedback == [dict(source="L3", target="L2", rule="add")]
    assert ff.steps == fb.steps == 10 and all(a["dropout"] == 0.2 for a in fb.areas)


def test_dropout_train_eval_and_monte_carlo():
    model = convrnn.create_model("greco_ff", dropout=0.5, steps=4, **SMALL)
    x = torch.rand(2, 3, 16, 16)
    model.train()
    assert not torch.allclose(model(x).output, model(x).output)
    model.eval()
    torch.testing.assert_close(model(x).output, model(x).output)
    model.dropout_at_test = True
    assert not torch.allclose(model(x).output, model(x).output)
    mc = convrnn.create_model("greco_ff", dropout=0.5, steps=4, dropout_at_test=True, **SMALL).eval()
    assert not torch.allclose(mc(x).output, mc(x).output)


@pytest.mark.parametrize("halting", ["stable", "confidence", "act"])
def test_halting_policies_pick_the_fixed_runs_step(halting):
    model = convrnn.create_model("greco_fb", dropout=0.0, **SMALL).eval()
    x = torch.rand(4, 3, 16, 16)
    full = model(x, steps=10, return_steps=True).step_outputs
    res = model(x, steps=10, halting=halting, return_steps=False)    # halted samples leave the batch
    for i, n in enumerate(res.steps.tolist()):
        if halting != "act":
            torch.testing.assert_close(res.output[i], full[n - 1, i])
    assert res.output.shape == (4, 5) and (res.steps >= 1).all() and (res.steps <= 10).all()


def test_explicit_feedforward_edges_concatenate_sources():
    cfg = MultiAreaConfig(in_channels=1, num_classes=2, steps=4,
                          areas=[dict(name="A", channels=3), dict(name="B", channels=4, pool=2),
                                 dict(name="C", channels=5, cell="elman")],
                          feedforward=[dict(source="A", target="B"), ("A", "C"), ("B", "C")])
    model = MultiAreaNetwork(cfg)
    assert model.areas["C"].conv.in_channels == 7
    res, rec = _run(model, torch.rand(2, 1, 8, 8))
    assert rec["C"][0].shape == (2, 5, 4, 4) and res.step_outputs.shape == (4, 2, 2)
    # round trip through a plain dict
    again = MultiAreaNetwork(MultiAreaConfig.from_dict(model.config.to_dict()))
    assert again.config == model.config


# ---- errors ------------------------------------------------------------------------------------

def test_clear_errors():
    areas = [dict(name="V1", channels=4), dict(name="V2", channels=4)]
    with pytest.raises(ValueError, match="unknown multi-area config key.*'stepz'.*did you mean 'steps'"):
        MultiAreaConfig.from_dict(dict(areas=areas, stepz=3))
    with pytest.raises(ValueError, match="unknown area 'V1' key.*'chanels'"):
        MultiAreaConfig(areas=[dict(name="V1", chanels=4)])
    with pytest.raises(ValueError, match="unknown area 'IT'. Valid areas: V1, V2"):
        MultiAreaConfig(areas=areas, feedback=[dict(source="IT", target="V1")])
    with pytest.raises(ValueError, match="unknown area 'V3'. Valid areas: V1, V2"):
        MultiAreaConfig(areas=areas, feedforward=[dict(source="V1", target="V3")])
    with pytest.raises(ValueError, match="unknown rule 'mul'. Valid rules: add, gain, concat"):
        MultiAreaConfig(areas=areas, feedback=[dict(source="V2", target="V1", rule="mul")])
    with pytest.raises(ValueError, match="source must come after"):
        MultiAreaConfig(areas=areas, feedback=[dict(source="V1", target="V2")])
    with pytest.raises(ValueError, match="unknown feedback edge key.*'sauce'"):
        MultiAreaConfig(areas=areas, feedback=[dict(sauce="V2", target="V1")])
    with pytest.raises(ValueError, match="unknown cell 'gruu'"):
        MultiAreaConfig(areas=[dict(name="V1", channels=4, cell="gruu")])
    with pytest.raises(ValueError, match="unique"):
        MultiAreaConfig(areas=[dict(name="V1", channels=4), dict(name="V1", channels=4)])
    with pytest.raises(ValueError, match="unknown multi-area preset key.*'widht'"):
        convrnn.create_model("greco_fb", widht=0.5)
    with pytest.raises(ValueError, match="unknown multi-area config key"):
        MultiAreaNetwork(MultiAreaConfig(areas=areas), bogus=1)
    with pytest.raises(ValueError, match="too small"):
        convrnn.create_model("greco_ff", **SMALL)(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="expected 3 channels"):
        convrnn.create_model("greco_ff", **SMALL)(torch.rand(1, 1, 16, 16))


def test_multiarea_checkpoint_round_trip(tmp_path):
    import convrnn
    from convrnn.checkpoint import load_model, save_model
    torch.manual_seed(0)
    m = convrnn.create_model("greco_fb", width=0.125, in_channels=1, num_classes=3).eval()
    save_model(tmp_path / "m.safetensors", m)
    back = load_model(tmp_path / "m.safetensors").eval()
    assert type(back).__name__ == "MultiAreaNetwork"
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(x, steps=4).output, m(x, steps=4).output)


def test_norm_is_groupnorm_between_conv_and_activation_in_every_layout():
    """``norm``: a GroupNorm after each area's feedforward conv (``instance``: one group per channel, at any
    width); the channels_last/bf16-safe implementation equals nn.GroupNorm in every layout and dtype."""
    from convrnn.models.multiarea import ContiguousGroupNorm
    torch.manual_seed(0)
    net = convrnn.create_model("greco_ff", width=0.34, num_classes=5, norm="instance")
    ch = [a.channels for a in net.areas.values()]
    assert [a.norm.num_groups for a in net.areas.values()] == ch and ch[0] % 2 == 1   # odd widths are fine
    area = net.areas["L1"]
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        area.norm.weight.uniform_(0.5, 2)
        area.norm.bias.uniform_(-1, 1)
        c = area.conv(x)
        ref = F.group_norm(c, ch[0], area.norm.weight, area.norm.bias, area.norm.eps)
        assert torch.allclose(area.norm(c), ref, atol=1e-6)
        cl = c.contiguous(memory_format=torch.channels_last)
        out = area.norm(cl)
        assert out.is_contiguous(memory_format=torch.channels_last) and torch.allclose(out, ref, atol=1e-6)
        with torch.autocast("cpu", torch.bfloat16):
            low = area.norm(cl.bfloat16())
        ref_b = F.group_norm(c.bfloat16().float(), ch[0], area.norm.weight, area.norm.bias, area.norm.eps)
        assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), ref_b, rtol=1e-2, atol=1e-2)
    gn = ContiguousGroupNorm(2, 4)
    assert isinstance(gn, torch.nn.GroupNorm)
    # norm=0 (default) adds nothing; a group count must divide the channels
    assert isinstance(convrnn.create_model("greco_ff", **SMALL).areas["L1"].norm, torch.nn.Identity)
    assert convrnn.create_model("greco_ff", norm=2, **SMALL).areas["L2"].norm.num_groups == 2
    with pytest.raises(ValueError, match="norm must divide channels"):
        convrnn.create_model("greco_ff", norm=3, **SMALL)
    with pytest.raises(ValueError, match="norm"):
        convrnn.create_model("greco_ff", norm="batch", **SMALL)
    # the normalised network trains: the gradient reaches the norm's affine parameters
    net(torch.rand(2, 3, 16, 16), steps=4).output.sum().backward()
    assert area.norm.weight.grad is not None and area.norm.weight.grad.abs().sum() > 0
