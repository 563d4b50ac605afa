"""Learned halting as a second stage (AnswerDynamics + DynamicsHaltingHead + halting_training): the
features against a literal transcription, PonderNet's distribution, batch shrinking, a head that learns
when the answer settles, the model/checkpoint/CLI integration."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convrnn
from convrnn.checkpoint import load_model, save_model
from convrnn.cli import main
from convrnn.config import TrainConfig
from convrnn.halting import AnswerDynamics, PonderNet, answer_features
from convrnn.halting_training import attach, fit_dynamics_halting, halting_log_probs, record_rollouts
from convrnn.layers import DynamicsHaltingHead
from convrnn.tasks.maze_task import MazeTask


def test_answer_features_literal():
    y = torch.zeros(2, 3, 2, 2)
    y[0, 1] = 5.0                       # sample 0: every pixel says class 1, confidently
    y[1, 2, 0, 0] = 1.0                 # sample 1: one pixel class 2, the rest a 3-way tie (argmax 0)
    prev = torch.tensor([[[1, 1], [1, 0]], [[0, 0], [0, 0]]])
    hist = torch.tensor([[0.0, 7.0, 1.0], [0.0, 0.0, 0.0]])
    h, h_prev = torch.ones(2, 4), torch.full((2, 4), 2.0)
    f, pred, changed = answer_features(y, prev, h, h_prev, hist)
    assert changed.tolist() == [1.0, 1.0] and pred[0].eq(1).all()
    assert torch.allclose(f[:, 0], torch.log1p(torch.tensor([1.0, 1.0])))
    assert torch.allclose(f[:, 1], torch.log1p(torch.tensor([7.0, 1.0])))             # max over 4 steps
    assert torch.allclose(f[:, 2], torch.log10(torch.tensor([0.25, 0.25]) + 1e-4))
    conf0 = torch.softmax(torch.tensor([0.0, 5.0, 0.0]), 0).max()
    assert torch.allclose(f[0, 3], torch.log(1 - conf0 + 1e-6)) and torch.allclose(f[0, 4], f[0, 3])
    assert torch.allclose(f[:, 5], torch.log(torch.tensor([0.5, 0.5]) + 1e-8))        # |1-2| / |2|
    first, _, ch = answer_features(y, None, h, None, torch.zeros(2, 3))
    assert ch.tolist() == [4.0, 4.0] and torch.allclose(first[:, 5], torch.log(torch.tensor(1.0 + 1e-8)))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(-8, 8), min_size=2, max_size=12), st.integers(1, 3))
def test_halting_distribution_sums_to_one_and_matches_pondernet(logits, batch):
    lg = torch.tensor([logits] * batch)
    log_p = halting_log_probs(lg)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(batch), atol=1e-5, rtol=0)
    pn = PonderNet()                                      # the inference policy's own log-space bookkeeping
    M = lg.shape[1]
    pn.start(batch, M, "cpu")
    idx, done = torch.arange(batch), torch.zeros(batch, dtype=torch.bool)
    for n in range(1, M + 1):
        pn.step(n, idx, None, None, None, lg[:, n - 1], done)
    torch.testing.assert_close(pn.log_p, log_p, atol=1e-5, rtol=1e-5)


def trained_like_model():
    torch.manual_seed(0)
    return convrnn.create_model("dtnet_mazes_w64", pretrained=True).eval()


def test_learned_policy_same_result_with_and_without_shrinking():
    model = trained_like_model()
    head = DynamicsHaltingHead()
    with torch.no_grad():
        head.mlp[0].weight.normal_()
        head.mlp[2].weight.normal_()
        head.mlp[2].bias.fill_(-1.0)
    x = MazeTask().eval_data(9, 6, 3)[0]
    with torch.no_grad():
        a = model(x, steps=40, halting=AnswerDynamics(head), shrink=True)
        b = model(x, steps=40, halting=AnswerDynamics(head), shrink=False)
    assert len(set(a.steps.tolist())) > 1, "needs samples halting at different steps"
    assert torch.equal(a.steps, b.steps)
    torch.testing.assert_close(a.output, b.output)


def test_head_learns_to_halt_when_the_answer_settles():
    """Synthetic rollouts: the loss stays high until step k (per sample) and the first feature drops at
    k. The fitted head halts close to k, never at step 1."""
    g = torch.Generator().manual_seed(0)
    N, M = 256, 30
    k = torch.randint(5, 25, (N,), generator=g)
    steps = torch.arange(M).expand(N, M)
    settled = steps >= k[:, None]
    feats = torch.randn(N, M, 6, generator=g) * 0.1
    feats[..., 0] += torch.where(settled, 0.0, 3.0)
    losses = torch.where(settled, 0.01, 1.0)
    head = fit_dynamics_halting(feats, losses, epochs=30)
    with torch.no_grad():
        log_p = halting_log_probs(head(feats))
    halt_at = (log_p.exp().cumsum(1) >= 0.5).float().argmax(1)
    assert (halt_at >= k).float().mean() >= 0.95            # not before the answer is right
    assert (halt_at - k).float().mean() <= 5.0              # and a few steps after (the prior spreads p)
    assert (halt_at > 0).all()
    from convrnn.evaluate import spearman
    assert spearman(k.numpy(), halt_at.numpy()) >= 0.9      # halts later where the answer settles later
    with pytest.raises(ValueError, match="expected features"):
        fit_dynamics_halting(feats[..., :5], losses)
    with pytest.raises(ValueError, match="not finite"):
        fit_dynamics_halting(feats, losses.masked_fill(settled, float("nan")))


def test_model_integration_checkpoint_and_errors(tmp_path):
    model = trained_like_model()
    x, y = MazeTask().eval_data(9, 8, 4)
    with pytest.raises(ValueError, match="needs a model with a learned halting head"):
        model(x, steps=5, halting="learned")
    crit = lambda xb: MazeTask().criterion(xb, TrainConfig())   # noqa: E731
    feats, losses = record_rollouts(model, x, y, crit, 30, batch_size=4)
    assert feats.shape == (8, 30, 6) and losses.shape == (8, 30) and torch.isfinite(feats).all()
    attach(model, fit_dynamics_halting(feats, losses, epochs=5))
    assert model.config.default_halting == "learned"
    save_model(tmp_path / "m.safetensors", model)
    back = load_model(tmp_path / "m.safetensors")
    with torch.no_grad():
        a, b = model(x, steps=30, halting="learned"), back(x, steps=30, halting="learned")
    assert torch.equal(a.steps, b.steps) and torch.equal(a.output, b.output)
    assert (a.steps > 1).all()
    with pytest.raises(ValueError, match="default_halting 'learned' needs dynamics_halting"):
        convrnn.RecurrentConfig(default_halting="learned")


def test_fit_halting_cli_then_eval_uses_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--no-progress", "mazes_cpu", "model_kwargs={width: 4, steps: 3}", "n_train=16",
                 "n_val=4", "epochs=1", "batch_size=8", "steps=3", "time_limit=null", "num_threads=1",
                 "train_size=5", f"out_dir={run}"]) == 0
    out = tmp_path / "learned"
    assert main(["fit-halting", str(run), "--levels", "5,7", "--n", "8", "--max-steps", "6", "--epochs", "2",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["halting"] == "learned" and cfg["halting_fit"]["levels"] == "5,7"
    assert main(["eval", str(out), "--sizes", "5,7", "--n", "4", "--no-curves", "--no-progress", "--json",
                 "--out", str(tmp_path / "ev")]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["halting"] == "learned" and set(res["levels"]) == {"5", "7"}
    assert main(["fit-halting", str(tmp_path / "nope"), "--levels", "5", "--out", str(tmp_path / "x")]) == 2
    # the 0/1-error objective: a different head from the same rollouts, recorded in the provenance
    err = tmp_path / "learned_err"
    assert main(["fit-halting", str(run), "--levels", "5,7", "--n", "8", "--max-steps", "6", "--epochs", "2",
                 "--objective", "error", "--lambda-p", "0.2", "--out", str(err)]) == 0
    fit = json.loads((err / "config.json").read_text())["halting_fit"]
    assert fit["objective"] == "error" and fit["lambda_p"] == 0.2
    a, b = load_model(out).dynamics_head, load_model(err).dynamics_head
    assert not all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
