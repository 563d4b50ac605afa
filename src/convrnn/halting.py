"""Halting policies: how many recurrent steps each sample takes, and which output it returns.

A policy is chosen at call time (``model(x, steps=200, halting="act")``), so a model trained with
20 steps runs 200 at test time unchanged. Every policy assigns each sample a weight ``p_n`` per step
and the model returns ``y = Σ_n p_n y_n`` with ``Σ_n p_n = 1`` per sample:

* :class:`Fixed` — ``p_M = 1``: the output of the last step.
* :class:`ACT` — Graves (2016), Adaptive Computation Time. With ``q_n = σ(halting unit)``,
  ``N = min{n : Σ_{k≤n} q_k ≥ 1 - ε}`` (or the cap M), remainder ``R = 1 - Σ_{k<N} q_k``,
  ``p_n = q_n`` for ``n < N``, ``p_N = R``; ponder cost ``ρ = N + R`` whose gradient flows
  through R only. Halted samples stop accumulating.
* :class:`PonderNet` — Banino et al. (2021). ``λ_n = σ(halting unit)``, ``p_n = λ_n Π_{j<n}(1-λ_j)``,
  ``λ_M = 1``; ``log p_n`` is kept (in log space) for the loss in :mod:`convrnn.losses`. At
  inference a sample halts when its cumulative p passes ``threshold`` (or by sampling) and
  returns that step's output.
* :class:`Confidence` — inference only: halt once the readout is confident (for dense outputs the
  least confident pixel decides).
* :class:`Convergence` — inference only: halt once the state stops changing,
  ``‖s_n - s_{n-1}‖ / ‖s_{n-1}‖ < tol``.
* :class:`StableOutput` — inference only: halt once the predicted labels (argmax over dim 1) have
  not changed for ``patience`` consecutive steps. Models whose state keeps drifting or cycling
  while the answer is settled (DT-nets on mazes often end in a 2-cycle) still halt.
* :class:`AnswerDynamics` — a learned halting rule trained as a second stage on a frozen backbone:
  PonderNet's ``λ_n = σ(head(f_n))`` where ``f_n`` are six "answer dynamics" features — how many
  outputs changed their answer since the last step (and the max of that count over 4 steps, and its
  fraction), the answer's confidence (1 - mean and 1 - min max-softmax) and the relative state
  change. It halts once ``1 - Π(1 - λ_j) >= threshold`` and returns that step's output.

The loop itself lives in :func:`run_recurrence`; at inference halted samples leave the batch, so
compute really drops as samples halt.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cells.base import State, first_tensor, map_state, zip_state
from .errors import check_number, check_positive_int, check_steps, unknown_name


class HaltingPolicy:
    """Base class. ``step`` sees the samples still in the batch (``idx`` into the full batch)."""

    name = "policy"
    readout_every_step = True   # does the policy need y_n at every step?
    uses_halting_unit = False

    def start(self, batch: int, max_steps: int, device) -> None:
        self.max_steps = max_steps

    def step(self, n: int, idx, h, h_prev, y, logit, done):
        """Return ``(p, halt)`` for the rows ``idx``: weight of this step's output and halting mask.

        ``done`` marks rows that halted earlier (only in the unshrunk mode); they must get p = 0.
        """
        raise NotImplementedError

    def extras(self) -> dict:
        return {}


class Fixed(HaltingPolicy):
    name = "fixed"
    readout_every_step = False

    def step(self, n, idx, h, h_prev, y, logit, done):
        last = n == self.max_steps
        halt = torch.full((len(idx),), last, dtype=torch.bool, device=idx.device)
        return (halt & ~done).float(), halt


class ACT(HaltingPolicy):
    name = "act"
    uses_halting_unit = True

    def __init__(self, eps: float = 0.01):
        check_number("ACT: eps", eps, 0, 1, max_open=True)
        self.eps = eps

    def start(self, batch, max_steps, device):
        super().start(batch, max_steps, device)
        self.cum = torch.zeros(batch, device=device)        # Σ_{k<n} q_k
        self.remainder = torch.zeros(batch, device=device)  # R
        self.halt_step = torch.zeros(batch, device=device)  # N

    def step(self, n, idx, h, h_prev, y, logit, done):
        q = torch.sigmoid(logit.float())
        cum = self.cum[idx]
        last = n == self.max_steps
        halt = (cum + q >= 1 - self.eps) if not last else torch.ones_like(q, dtype=torch.bool)
        halt_new = halt & ~done
        R = 1 - cum
        p = torch.where(halt, R, q).masked_fill(done, 0.0)
        self.cum = self.cum.index_copy(0, idx, torch.where(halt | done, cum, cum + q))
        self.remainder = self.remainder.index_copy(0, idx, torch.where(halt_new, R, self.remainder[idx]))
        self.halt_step = self.halt_step.index_copy(0, idx, torch.where(halt_new, float(n), self.halt_step[idx]))
        return p, halt | done

    def extras(self):
        # ρ = N + R; N is a constant, so the gradient flows through R alone.
        return {"ponder_cost": self.halt_step + self.remainder, "remainder": self.remainder}


class PonderNet(HaltingPolicy):
    name = "ponder"
    uses_halting_unit = True

    def __init__(self, threshold: float = 0.5, sample: bool = False):
        check_number("PonderNet: threshold", threshold, 0, 1, min_open=True)
        self.threshold, self.sample = threshold, sample

    def start(self, batch, max_steps, device):
        super().start(batch, max_steps, device)
        self.log_not = torch.zeros(batch, device=device)     # Σ_{j<n} log(1 - λ_j)
        self.log_p = torch.full((batch, max_steps), float("-inf"), device=device)
        if self.sample:
            self.u = torch.rand(batch, device=device)

    def step(self, n, idx, h, h_prev, y, logit, done):
        logit = logit.float()
        log_not = self.log_not[idx]
        last = n == self.max_steps
        log_p = log_not if last else F.logsigmoid(logit) + log_not          # λ_M = 1
        new_not = log_not + F.logsigmoid(-logit)
        self.log_p = self.log_p.index_put((idx, torch.full_like(idx, n - 1)), log_p)
        self.log_not = self.log_not.index_copy(0, idx, new_not)
        cum = -torch.expm1(new_not)                                          # 1 - Π(1-λ_j)
        target = self.u[idx] if self.sample else self.threshold
        halt = (cum >= target) if not last else torch.ones_like(cum, dtype=torch.bool)
        return (halt & ~done).float(), halt | done

    def extras(self):
        return {"log_halt": self.log_p}


def confidence(y: torch.Tensor) -> torch.Tensor:
    """Per-sample confidence of logits ``y`` (B, C, ...): the smallest max-softmax over positions."""
    conf = torch.softmax(y.float(), dim=1).amax(dim=1)
    return conf.flatten(1).amin(1) if conf.dim() > 1 else conf


class Confidence(HaltingPolicy):
    name = "confidence"
    def __init__(self, threshold: float = 0.9, min_steps: int = 1):
        check_number("Confidence: threshold", threshold, 0, 1, min_open=True)
        self.threshold, self.min_steps = threshold, min_steps

    def step(self, n, idx, h, h_prev, y, logit, done):
        halt = (confidence(y) >= self.threshold) & (n >= self.min_steps)
        if n == self.max_steps:
            halt = torch.ones_like(halt)
        return (halt & ~done).float(), halt | done


class Convergence(HaltingPolicy):
    name = "convergence"
    readout_every_step = False

    def __init__(self, tol: float = 1e-3, min_steps: int = 2):
        check_number("Convergence: tol", tol, 0, min_open=True)
        self.tol, self.min_steps = tol, max(2, min_steps)

    def step(self, n, idx, h, h_prev, y, logit, done):
        if h_prev is None or n < self.min_steps:
            halt = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        else:
            diff = (h.float() - h_prev.float()).flatten(1).norm(dim=1)
            halt = diff <= self.tol * h_prev.float().flatten(1).norm(dim=1).clamp_min(1e-8)
        if n == self.max_steps:
            halt = torch.ones_like(halt)
        return (halt & ~done).float(), halt | done


class StableOutput(HaltingPolicy):
    name = "stable"
    def __init__(self, patience: int = 5, min_steps: int = 1):
        check_positive_int("StableOutput: patience", patience)
        self.patience, self.min_steps = patience, min_steps

    def start(self, batch, max_steps, device):
        super().start(batch, max_steps, device)
        self.prev = None
        self.count = torch.zeros(batch, dtype=torch.long, device=device)

    def step(self, n, idx, h, h_prev, y, logit, done):
        pred = y.argmax(1)
        if self.prev is None:
            self.prev = pred.new_zeros((len(self.count),) + tuple(pred.shape[1:]))
            same = torch.zeros(len(idx), dtype=torch.bool, device=pred.device)
        else:
            same = (pred == self.prev[idx]).flatten(1).all(1) if pred.dim() > 1 else pred == self.prev[idx]
        self.prev[idx] = pred
        count = torch.where(same, self.count[idx] + 1, torch.zeros_like(self.count[idx]))
        self.count[idx] = count
        halt = (count >= self.patience) & (n >= self.min_steps)
        if n == self.max_steps:
            halt = torch.ones_like(halt)
        return (halt & ~done).float(), halt | done


def answer_features(y, pred_prev, h, h_prev, history):
    """The six answer-dynamics features (rows, 6) of step outputs ``y`` (rows, C[, H, W]) and outputs
    ``h`` (see :class:`AnswerDynamics`). ``pred_prev``: the previous step's argmax or None (first
    step: every output counts as changed); ``history``: (rows, 3) change counts of the 3 steps before."""
    y = y.float()
    pred = y.argmax(1)
    size = pred[0].numel() if pred.dim() > 1 else 1
    if pred_prev is None:
        changed = torch.full((len(y),), float(size), device=y.device)
    else:
        changed = (pred != pred_prev).reshape(len(y), -1).sum(1).float()
    conf = torch.softmax(y, 1).amax(1).reshape(len(y), -1)
    if h_prev is None:
        rel = torch.ones(len(y), device=y.device)
    else:
        diff = (h.float() - h_prev.float()).flatten(1).norm(dim=1)
        rel = diff / h_prev.float().flatten(1).norm(dim=1).clamp_min(1e-8)
    recent = torch.maximum(changed, history.amax(1))
    return torch.stack([torch.log1p(changed), torch.log1p(recent), torch.log10(changed / size + 1e-4),
                        torch.log(1 - conf.mean(1) + 1e-6), torch.log(1 - conf.amin(1) + 1e-6),
                        torch.log(rel + 1e-8)], 1), pred, changed


class AnswerDynamics(HaltingPolicy):
    """Learned halting on answer dynamics (see the module docstring). ``head`` maps features (rows, 6)
    to halting logits (rows,), e.g. :class:`convrnn.layers.DynamicsHaltingHead`; ``head=None`` never
    halts before the cap and only records the features (``self.recorded``: (B, M, 6)), which is how
    the second stage caches a frozen backbone's rollouts."""

    name = "learned"

    def __init__(self, head=None, threshold: float = 0.5):
        check_number("AnswerDynamics: threshold", threshold, 0, 1, min_open=True)
        self.head, self.threshold = head, threshold

    def start(self, batch, max_steps, device):
        super().start(batch, max_steps, device)
        self.prev = None
        self.history = torch.zeros(batch, 3, device=device)
        self.log_not = torch.zeros(batch, device=device)
        self.recorded = torch.zeros(batch, max_steps, 6, device=device) if self.head is None else None

    def step(self, n, idx, h, h_prev, y, logit, done):
        prev = None if self.prev is None else self.prev[idx]
        feats, pred, changed = answer_features(y, prev, h, h_prev, self.history[idx])
        if self.prev is None:
            self.prev = pred.new_zeros((len(self.history),) + tuple(pred.shape[1:]))
        self.prev[idx] = pred
        self.history[idx] = torch.cat([self.history[idx, 1:], changed[:, None]], 1)
        last = n == self.max_steps
        if self.head is None:
            self.recorded[idx, n - 1] = feats
            halt = torch.full((len(idx),), last, dtype=torch.bool, device=idx.device)
        else:
            with torch.no_grad():
                lam_logit = self.head(feats).float()
            new_not = self.log_not[idx] + F.logsigmoid(-lam_logit)
            self.log_not[idx] = new_not
            halt = (-torch.expm1(new_not) >= self.threshold) | last
        return (halt & ~done).float(), halt | done


class Shadow(HaltingPolicy):
    """Run several policies side by side on one unshrunk pass (evaluation): every sample keeps iterating
    so that the accuracy after each fixed step count can be read, while each inner policy's halting step
    is recorded (``halted[name]``, (B,) long; the cap for samples it never halts). The pass ends once
    every inner policy has halted every sample and ``overrun`` times the last halting step has passed
    (or at the cap), so the fixed-step curve reaches past where the policies stop."""

    name = "shadow"

    def __init__(self, policies: dict, overrun: float = 1.25):
        self.policies, self.overrun = dict(policies), float(overrun)
        self.uses_halting_unit = any(p.uses_halting_unit for p in self.policies.values())

    def start(self, batch, max_steps, device):
        super().start(batch, max_steps, device)
        for p in self.policies.values():
            p.start(batch, max_steps, device)
        self.done = {k: torch.zeros(batch, dtype=torch.bool, device=device) for k in self.policies}
        self.halted = {k: torch.full((batch,), max_steps, dtype=torch.long, device=device) for k in self.policies}
        self.last_halt = 0

    def step(self, n, idx, h, h_prev, y, logit, done):
        for k, p in self.policies.items():
            _, halt = p.step(n, idx, h, h_prev, y, logit, self.done[k][idx])
            new = halt & ~self.done[k][idx]
            if bool(new.any()):
                self.halted[k][idx[new]] = n
                self.done[k][idx[new]] = True
                self.last_halt = n
        all_done = all(bool(d.all()) for d in self.done.values())
        stop = n == self.max_steps or (all_done and n >= self.overrun * self.last_halt)
        halt = torch.full((len(idx),), stop, dtype=torch.bool, device=idx.device)
        return (halt & ~done).float(), halt


POLICIES = {"fixed": Fixed, "act": ACT, "ponder": PonderNet, "pondernet": PonderNet,
            "confidence": Confidence, "convergence": Convergence, "stable": StableOutput}


def get_policy(halting) -> HaltingPolicy:
    """Accept a policy instance, a name from :data:`POLICIES` or ``None`` (fixed)."""
    if halting is None:
        return Fixed()
    if isinstance(halting, HaltingPolicy):
        return halting
    if isinstance(halting, str):
        if halting not in POLICIES:
            raise unknown_name("halting policy", halting, POLICIES)
        return POLICIES[halting]()
    raise TypeError(f"halting: expected a name ({', '.join(POLICIES)}) or a HaltingPolicy, got {halting!r}")


@dataclass
class RecurrentOutput:
    """What a recurrent model returns.

    ``output``: the halted output ``Σ p_n y_n`` (B, ...); ``steps``: steps each sample used (B,);
    ``ponder_cost`` (ACT, B), ``log_halt`` (PonderNet, B x M); ``step_outputs`` (M, B, ...) when
    asked for; ``state``: each sample's state at its halting step.
    """

    output: torch.Tensor
    steps: torch.Tensor
    ponder_cost: torch.Tensor | None = None
    log_halt: torch.Tensor | None = None
    step_outputs: torch.Tensor | None = None
    state: State | None = None


def run_recurrence(step_fn, readout_fn, halt_fn, x, steps: int, halting=None, state=None,
                   return_steps: bool = False, shrink: bool | None = None, tbptt: int | None = None,
                   on_step=None):
    """Iterate ``h, state = step_fn(x, state, n)`` up to ``steps`` times under a halting policy.

    ``x`` is the per-sample input the steps share: a tensor or a tuple/dict of tensors, batch first
    (e.g. the encoded image and its hoisted input drive); it shrinks with the batch.

    ``readout_fn(h)`` gives y_n, ``halt_fn(h)`` the halting logit (B,). With ``shrink`` (default:
    on unless ``return_steps``) halted samples leave the batch; the result is the same as the
    unshrunk computation. ``tbptt=k`` detaches the state every k steps. ``on_step(n, idx, y_n)`` is
    called after every step with the rows ``idx`` of the full batch that ran it (for accuracy-vs-step
    curves without keeping every output).
    """
    steps = check_steps(steps)
    policy = get_policy(halting)
    if shrink is None:
        shrink = not return_steps
    if shrink and return_steps:
        raise ValueError("return_steps=True needs every sample at every step: use shrink=False")
    if tbptt is not None:
        check_steps(tbptt, "tbptt")
    x0 = first_tensor(x)
    B, dev = x0.shape[0], x0.device
    if B == 0:
        raise ValueError("run_recurrence: the batch is empty (expected at least one sample)")
    policy.start(B, steps, dev)
    running = torch.arange(B, device=dev)          # rows of the full batch still running
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    x_run, h_prev = x, None
    out = final_state = None
    used = torch.full((B,), steps, dtype=torch.long, device=dev)
    step_outputs = []

    for n in range(1, steps + 1):
        h, state = step_fn(x_run, state, n)
        if tbptt is not None and n % tbptt == 0:   # the readout of this step still gets gradient
            state = map_state(state, torch.Tensor.detach)
        idx = running if shrink else torch.arange(B, device=dev)
        d = torch.zeros(len(idx), dtype=torch.bool, device=dev) if shrink else done
        y = readout_fn(h) if (policy.readout_every_step or return_steps or on_step) else None
        logit = halt_fn(h) if policy.uses_halting_unit else None
        p, halt = policy.step(n, idx, h, h_prev, y, logit, d)
        if return_steps:
            step_outputs.append(y)
        if on_step is not None:
            on_step(n, idx, y)
        new = halt & ~d
        any_new = bool(new.any())
        if any_new:
            sel = new.nonzero().squeeze(1)
            y_sel = y[sel] if y is not None else readout_fn(h[sel])
            if out is None:
                out = torch.zeros((B,) + tuple(y_sel.shape[1:]), dtype=torch.promote_types(y_sel.dtype, torch.float32),
                                  device=dev)
            if final_state is None:
                final_state = map_state(state, lambda s: s.new_zeros((B,) + tuple(s.shape[1:])))
            final_state = _scatter_state(final_state, idx[sel], map_state(state, lambda s: s[sel]))
            used[idx[sel]] = n
        if y is not None:
            if out is None:
                out = torch.zeros((B,) + tuple(y.shape[1:]), dtype=torch.promote_types(y.dtype, torch.float32),
                                  device=dev)
            w = p.view((-1,) + (1,) * (y.dim() - 1))
            out = out.index_add(0, idx, (w * y).to(out.dtype))
        elif any_new:
            out = out.index_add(0, idx[sel], y_sel.to(out.dtype))
        if not any_new:                              # nobody halted: nothing to drop (the common case)
            h_prev = h
            continue
        if not return_steps and bool(halt.all()):
            break
        if shrink:                                 # halted samples leave the batch
            keep = (~halt).nonzero().squeeze(1)
            running, x_run = running[keep], map_state(x_run, lambda t: t[keep])
            state = map_state(state, lambda s: s[keep])
            h = h[keep]
        else:
            done = done | halt
        h_prev = h

    extras = policy.extras()
    return RecurrentOutput(output=out, steps=used, ponder_cost=extras.get("ponder_cost"),
                           log_halt=extras.get("log_halt"),
                           step_outputs=torch.stack(step_outputs) if return_steps else None, state=final_state)


def _scatter_state(full: State, rows: torch.Tensor, part: State) -> State:
    return zip_state(lambda f, p: f.index_copy(0, rows, p), full, part)
