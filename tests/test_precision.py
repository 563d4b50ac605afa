"""bf16 autocast on the CPU: what amp="auto" picks, what stays float32 under autocast, a bf16 +
channels_last training run that learns, and the inductor-compiled step against eager."""
import pytest
import torch
from test_train import OVERFIT, _train, _train_acc

import convrnn
from convrnn import runtime
from convrnn.checkpoint import load_model
from convrnn.config import TrainConfig
from convrnn.halting import ACT, PonderNet
from convrnn.losses import act_loss, cross_entropy


def test_resolve_amp():
    native = runtime.cpu_has_native_bf16()
    assert runtime.resolve_amp("auto", "cpu") == ("bf16" if native else "none")
    assert runtime.resolve_amp("none", "cpu") == "none" and runtime.resolve_amp("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="amp must be one of auto, none, bf16, got 'fp8'"):
        runtime.resolve_amp("fp8", "cpu")
    with runtime.autocast("none", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert TrainConfig().amp == "auto"
    with pytest.raises(ValueError, match="amp must be one of auto, none, bf16"):
        TrainConfig.from_dict({"amp": "fp16"})


def test_what_must_stay_exact_is_float32_under_autocast():
    torch.manual_seed(0)
    model = convrnn.create_model("convrnn_dense", cell="convgru", width=6)
    with torch.no_grad():
        model.halting_unit.fc.weight.normal_()
    x, y = torch.rand(4, 3, 10, 10), torch.randint(0, 2, (4, 10, 10))
    seen = {}

    def record(name, pick):
        def hook(module, inputs, output):
            seen.setdefault(name, pick(output).dtype)      # returns None: the output is kept
        return hook
    model.halting_unit.register_forward_hook(record("logit", lambda o: o))
    model.cell.register_forward_hook(record("cell", lambda o: o[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        act = model(x, steps=6, halting=ACT(), return_steps=True, shrink=False)
        loss = act_loss(act, y)
        pn = model(x, steps=6, halting=PonderNet(), return_steps=True, shrink=False)
    assert seen == {"cell": torch.bfloat16, "logit": torch.float32}     # convolutions in bf16, halting unit fp32
    assert act.output.dtype == torch.float32 and loss.dtype == torch.float32
    assert act.ponder_cost.dtype == torch.float32 and pn.log_halt.dtype == torch.float32
    # PonderNet's halting distribution, kept in log space in fp32, still sums to one per sample
    torch.testing.assert_close(torch.logsumexp(pn.log_halt, 1), torch.zeros(4), atol=1e-6, rtol=0)
    assert cross_entropy(act.step_outputs[-1], y).dtype == torch.float32


def test_bf16_channels_last_training_learns(tmp_path):
    """The overfitting run of test_train, forced to bf16 autocast + channels_last whatever the CPU."""
    cfg = TrainConfig.from_dict({**OVERFIT, "amp": "bf16", "channels_last": True, "out_dir": str(tmp_path)})
    torch.manual_seed(cfg.seed)
    init = convrnn.create_model(cfg.model, **cfg.model_kwargs)
    _train(cfg)
    before, after = _train_acc(init, cfg), _train_acc(load_model(tmp_path), cfg)
    assert before <= 0.125 and after >= 0.75


def test_inductor_compiled_step_equals_eager():
    torch.manual_seed(0)
    model = convrnn.create_model("dtnet_recall_mazes", width=4, steps=3)
    ref = convrnn.create_model("dtnet_recall_mazes", width=4, steps=3)
    ref.load_state_dict(model.state_dict())
    model.cell.compile(backend="inductor")       # what train does with compile: true
    x = torch.rand(2, 3, 12, 12)
    a, b = model(x, steps=4).output, ref(x, steps=4).output
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("name, cell, want", [
    ("dtnet_recall_mazes", None, True), ("convrnn_dense", "convgru", False), ("convrnn_dense", "convlstm", False),
    ("convrnn_dense", "locrnn", True), ("greco_fb", None, True), ("unet_mri", None, True)])
def test_channels_last_auto_follows_the_measurements(name, cell, want):
    model = convrnn.create_model(name, **({"cell": cell} if cell else {}))
    assert runtime.channels_last_wins(model, "cpu") is want
    moved = runtime.use_channels_last(model, "auto", "cpu")
    assert runtime.is_channels_last(moved) is want
    assert runtime.channels_last_wins(convrnn.ConvRNN(cell or "elman", 3, 4), "cpu") is (cell not in ("convgru",
                                                                                                     "convlstm"))
    with pytest.raises(ValueError, match="channels_last must be true, false or auto"):
        runtime.use_channels_last(model, "yes")
    with pytest.raises(ValueError, match="channels_last must be true, false or auto"):
        TrainConfig.from_dict({"channels_last": "yes"})


def test_eval_cli_bf16_on_the_bundled_model(tmp_path, capsys):
    import json

    from convrnn.cli import main
    for amp in ("none", "bf16"):
        assert main(["eval", "dtnet_mazes_w64", "--sizes", "9", "--n", "8", "--amp", amp, "--no-curves",
                     "--no-progress", "--device", "cpu", "--out", str(tmp_path / amp)]) == 0
    r32, r16 = (json.loads((tmp_path / a / "eval.json").read_text()) for a in ("none", "bf16"))
    assert r32["amp"] == "none" and r16["amp"] == "bf16" and r16["levels"]["9"]["amp"] == "bf16"
    assert r16["levels"]["9"]["accuracy"] == r32["levels"]["9"]["accuracy"] == 1.0

