"""Learned halting as a second stage: fit :class:`~convrnn.layers.DynamicsHaltingHead` on the cached
rollouts of a frozen, already trained backbone (halting units trained with the backbone from scratch
collapsed to 1-2 steps on mazes and PathFinder here).

1. :func:`record_rollouts` runs the frozen model for ``M`` steps and keeps, per sample and step, the
   six answer-dynamics features (:func:`convrnn.halting.answer_features`) and the task loss.
2. :func:`fit_dynamics_halting` trains the head with PonderNet's objective on that cache (Banino et
   al. 2021): ``λ_n = σ(head(f_n))``, ``p_n = λ_n Π_{j<n} (1 - λ_j)``, ``λ_M = 1``,
   ``L = Σ_n p_n L_n + β KL(p ‖ Geom(λ_p))`` (in log space; seconds, not minutes, since the backbone
   is not run again).

At inference ``model(x, halting="learned")`` halts each sample once ``Σ_{j<=n} p_j >= 0.5`` and
returns that step's output. Recipe from ``shared/reference/halting-training.md`` (mazes: λ_p 0.05,
β 0.01, a 6 -> 16 -> 1 MLP).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .halting import AnswerDynamics
from .layers import DynamicsHaltingHead
from .losses import pondernet_kl


@torch.no_grad()
def record_rollouts(model, x, y, make_criterion, steps: int, batch_size: int = 64, device="cpu"):
    """``(features (N, M, 6), losses (N, M))`` of the frozen ``model`` over ``steps`` steps;
    ``make_criterion(xb)`` gives the batch's ``criterion(logits, target, reduce=False)`` (one loss per
    sample; a task's ``criterion(x, cfg)``)."""
    model.eval()
    feats, losses = [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        criterion = make_criterion(xb)
        policy = AnswerDynamics(head=None)
        out = model(xb, steps=steps, halting=policy, return_steps=True, shrink=False)
        feats.append(policy.recorded.cpu())
        losses.append(torch.stack([criterion(out.step_outputs[n], yb, reduce=False) for n in range(steps)], 1)
                      .float().cpu())
    return torch.cat(feats), torch.cat(losses)


def halting_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log p_n`` (N, M) of halting at step n from per-step halting logits (N, M), with ``λ_M = 1``."""
    log_lam, log_not = F.logsigmoid(logits), F.logsigmoid(-logits)
    before = torch.cat([torch.zeros_like(log_not[:, :1]), log_not[:, :-1].cumsum(1)], 1)   # Σ_{j<n} log(1-λ_j)
    log_p = log_lam + before
    return torch.cat([log_p[:, :-1], before[:, -1:]], 1)


def fit_dynamics_halting(feats: torch.Tensor, losses: torch.Tensor, *, lambda_p: float = 0.05, beta: float = 0.01,
                         epochs: int = 40, lr: float = 3e-3, batch_size: int = 16, seed: int = 0) -> DynamicsHaltingHead:
    """Train a :class:`DynamicsHaltingHead` on cached ``feats`` (N, M, 6) and per-step ``losses`` (N, M)."""
    if feats.dim() != 3 or feats.shape[-1] != 6 or losses.shape != feats.shape[:2]:
        raise ValueError(f"fit_dynamics_halting: expected features (N, M, 6) and losses (N, M), got "
                         f"{tuple(feats.shape)} and {tuple(losses.shape)}")
    if not (torch.isfinite(feats).all() and torch.isfinite(losses).all()):
        raise ValueError("fit_dynamics_halting: the cached features or losses are not finite")
    torch.manual_seed(seed)
    head = DynamicsHaltingHead()
    flat = feats.reshape(-1, 6)
    head.mean.copy_(flat.mean(0))
    head.std.copy_(flat.std(0).clamp_min(1e-3))
    opt = torch.optim.Adam(head.mlp.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(feats), generator=g)
        for i in range(0, len(feats), batch_size):
            idx = perm[i:i + batch_size]
            log_p = halting_log_probs(head(feats[idx]))
            loss = (log_p.exp() * losses[idx]).sum(1).mean() + beta * pondernet_kl(log_p, lambda_p).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def attach(model, head: DynamicsHaltingHead, default: bool = True):
    """Give ``model`` the fitted head (``halting="learned"``; its default policy for evaluation when
    ``default``). Returns the model."""
    import dataclasses
    model.config = dataclasses.replace(model.config, dynamics_halting=True,
                                       default_halting="learned" if default else model.config.default_halting)
    model.dynamics_head = head
    return model
