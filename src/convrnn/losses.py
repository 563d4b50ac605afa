"""Training objectives for recurrent models.

* :func:`all_steps_loss` — the task loss averaged over the readouts of all steps.
* :func:`act_loss` — Graves (2016): ``L_task + τ · mean(ρ)``, ρ = N + R (gradient through R only).
* :func:`pondernet_loss` — Banino et al. (2021): ``Σ_n p_n L(y, ŷ_n) + β · KL(p ‖ p_G)`` with the
  geometric prior truncated at M and renormalised, everything in log space.
* :func:`progressive_loss` — Bansal et al. (2022): ``(1-α)·L(ŷ_m) + α·L(ŷ_prog)`` where ŷ_prog runs
  n ~ U{0..m-1} steps without gradient, detaches, then k ~ U{1..m-n} steps with gradient. The n
  steps are not run twice: the full pass is split at n and ŷ_prog starts from its detached state.

``criterion(logits, target)`` returns a scalar; ``criterion(logits, target, reduce=False)`` must
return one loss per sample for PonderNet. :func:`cross_entropy` is the default.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .cells.base import map_state
from .errors import check_number
from .halting import RecurrentOutput


def cross_entropy(logits, target, reduce: bool = True, weight_mask: torch.Tensor | None = None):
    """Cross-entropy for (B, C) or dense (B, C, H, W) logits; ``weight_mask`` (B, H, W) weights pixels
    (0 masks them out). With ``reduce=False`` returns one value per sample."""
    loss = F.cross_entropy(logits.float(), target.long(), reduction="none")
    if loss.dim() > 1:
        if weight_mask is not None:
            w = weight_mask.to(loss.dtype)
            loss = (loss * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1.0)
        else:
            loss = loss.flatten(1).mean(1)
    return loss.mean() if reduce else loss


def all_steps_loss(out: RecurrentOutput, target, criterion=cross_entropy):
    """The task loss averaged over every step's readout (speed-accuracy training of unrolled networks)."""
    if out.step_outputs is None:
        raise ValueError("all_steps_loss needs an output computed with return_steps=True")
    return torch.stack([criterion(y, target) for y in out.step_outputs]).mean()


def act_loss(out: RecurrentOutput, target, tau: float = 1e-3, criterion=cross_entropy):
    if out.ponder_cost is None:
        raise ValueError("act_loss needs an output computed with halting='act'")
    return criterion(out.output, target) + tau * out.ponder_cost.mean()


def geometric_log_prior(lambda_p: float, max_steps: int, device=None) -> torch.Tensor:
    """log p_G(n) = log λ_p + (n-1) log(1-λ_p), n = 1..M, renormalised over the M steps."""
    check_number("lambda_p", lambda_p, 0, 1, min_open=True)
    n = torch.arange(max_steps, dtype=torch.float64, device=device)
    log1m = math.log1p(-lambda_p) if lambda_p < 1 else float("-inf")
    logp = math.log(lambda_p) + torch.where(n > 0, n * log1m, torch.zeros_like(n))
    return (logp - torch.logsumexp(logp, 0)).float()


def pondernet_kl(log_halt: torch.Tensor, lambda_p: float) -> torch.Tensor:
    """KL(p ‖ p_G) per sample from ``log_halt`` (B, M) — p first, as in the paper."""
    log_prior = geometric_log_prior(lambda_p, log_halt.shape[1], log_halt.device)
    p = log_halt.exp()
    terms = torch.where(torch.isneginf(log_halt), torch.zeros_like(p), p * (log_halt - log_prior))
    return terms.sum(1)


def pondernet_loss(out: RecurrentOutput, target, lambda_p: float = 0.2, beta: float = 0.01, criterion=cross_entropy):
    if out.log_halt is None or out.step_outputs is None:
        raise ValueError("pondernet_loss needs halting='ponder' and return_steps=True")
    M = out.step_outputs.shape[0]
    per_step = torch.stack([criterion(out.step_outputs[n], target, reduce=False) for n in range(M)], 1)  # (B, M)
    rec = (out.log_halt.exp() * per_step).sum(1).mean()
    return rec + beta * pondernet_kl(out.log_halt, lambda_p).mean()


def progressive_loss(model, image, target, max_steps: int, alpha: float = 0.01, criterion=cross_entropy,
                     generator: torch.Generator | None = None):
    """Bansal et al. (2022). Returns ``(loss, full_output)``.

    The full pass runs as n steps then ``max_steps - n`` more from their state (the same computation
    and gradient as one pass of ``max_steps``), and the progressive pass continues from the detached
    state at n, which is exactly the state n steps without gradient would reach — so those n steps
    are not recomputed."""
    if alpha <= 0:
        full = model(image, steps=max_steps)
        return criterion(full.output, target), full
    n = int(torch.randint(0, max_steps, (1,), generator=generator))
    k = int(torch.randint(1, max_steps - n + 1, (1,), generator=generator))
    state = None
    if n > 0:
        first = model(image, steps=n)
        full = model(image, steps=max_steps - n, state=first.state)
        full.steps = full.steps + n
        state = map_state(first.state, torch.Tensor.detach)
    else:
        full = model(image, steps=max_steps)
    prog = model(image, steps=k, state=state)
    return (1 - alpha) * criterion(full.output, target) + alpha * criterion(prog.output, target), full
