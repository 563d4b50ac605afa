"""Robustness analyses for recurrent classifiers: input noise, speed-accuracy, adversarial attacks.

Every function takes a classifier that is called as ``model(x, steps=T, return_steps=True)`` and
returns a :class:`~convrnn.halting.RecurrentOutput` whose ``step_outputs`` is ``(T, B, classes)``
(e.g. :class:`~convrnn.models.multiarea.MultiAreaNetwork`), images in ``[0, 1]`` and int labels.
Results are plain dicts (JSON-ready); :func:`write_robustness_report` writes them as JSON and PNG.

* :func:`noise_robustness` — accuracy at every readout step under Gaussian noise, salt-and-pepper
  noise or Gaussian blur, one entry per noise level. Noise is drawn from a ``torch.Generator``
  seeded per level (``seed + level index``), for the whole set at once, so the result does not
  depend on ``batch_size`` or on the order of the levels.
* :func:`speed_accuracy` — accuracy per readout step and its area under the curve (the mean
  accuracy over steps 1..T, which lies in [0, 1]).
* :func:`adversarial_accuracy` — L-inf FGSM / PGD on the *final-step* output, with gradients
  through the whole unrolled network, either with Foolbox 3 (``library="foolbox"``, the optional
  dependency) or with the small literal implementation here (``library="own"``). Both use the
  summed cross-entropy as the loss, no random start and step ``rel_stepsize * eps``, so they agree.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..fileio import atomic_write_text
from .plots import pyplot, save_figure

__all__ = ["NOISE_KINDS", "ATTACKS", "add_noise", "gaussian_blur", "gaussian_kernel1d", "step_accuracies",
           "noise_robustness", "speed_accuracy", "FinalStepLogits", "adversarial_examples", "adversarial_accuracy",
           "write_robustness_report"]

NOISE_KINDS = ("gaussian", "salt_pepper", "blur")
ATTACKS = ("fgsm", "pgd")
LIBRARIES = ("foolbox", "own")


# --------------------------------------------------------------------------- helpers

class _EvalMode:
    """Put a module in eval mode for a block and restore its previous mode afterwards."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        return False


def _check_xy(x: torch.Tensor, y: torch.Tensor):
    if x.dim() != 4:
        raise ValueError(f"x: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    y = torch.as_tensor(y, dtype=torch.long, device=x.device)
    if y.shape != x.shape[:1]:
        raise ValueError(f"y: expected {x.shape[0]} labels, got shape {tuple(y.shape)}")
    return x, y


def _device(model: nn.Module):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def step_accuracies(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int = 64,
                    forward_kwargs: dict | None = None) -> list[float]:
    """Accuracy of ``step_outputs[t]`` for t = 1..steps (fixed unrolling, eval mode), as a list."""
    x, y = _check_xy(x, y)
    dev = _device(model)
    correct = torch.zeros(steps, dtype=torch.long)
    with _EvalMode(model):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            so = model(xb, steps=steps, return_steps=True, **(forward_kwargs or {})).step_outputs
            correct += (so.argmax(-1) == yb.unsqueeze(0)).sum(1).cpu()
    return (correct.double() / max(x.shape[0], 1)).tolist()


# --------------------------------------------------------------------------- noise

def gaussian_kernel1d(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``ceil(3 sigma)`` (odd length); sigma 0 gives ``[1]``."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return torch.ones(1, dtype=dtype, device=device)
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (N, C, H, W) images with a separable Gaussian (rows, then columns), each channel on its
    own, borders replicated (so a constant image stays constant and its mean is kept)."""
    k = gaussian_kernel1d(float(sigma), dtype=x.dtype, device=x.device)
    if k.numel() == 1:
        return x.clone()
    c, r = x.shape[1], k.numel() // 2
    kh = k.view(1, 1, 1, -1).expand(c, 1, 1, k.numel())
    kv = k.view(1, 1, -1, 1).expand(c, 1, k.numel(), 1)
    out = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kh, groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), kv, groups=c)


def add_noise(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None,
              bounds=(0.0, 1.0)) -> torch.Tensor:
    """Corrupt images ``x`` (N, C, H, W).

    ``gaussian``: ``x + level * N(0, 1)`` per pixel and channel, clipped to ``bounds``.
    ``salt_pepper``: a fraction ``level`` of pixel positions (all channels together) set to the
    lower or upper bound with probability 1/2 each. ``blur``: :func:`gaussian_blur` with
    ``sigma = level``. Level 0 returns ``x`` unchanged (a copy) for every kind.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(NOISE_KINDS)}")
    level = float(level)
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    if kind == "blur":
        return gaussian_blur(x, level)
    lo, hi = bounds
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        return (x + level * noise).clamp(lo, hi)
    if level > 1:
        raise ValueError(f"salt_pepper level is a fraction in [0, 1], got {level}")
    n, _, h, w = x.shape
    u = torch.rand((n, 1, h, w), generator=generator, device="cpu").to(x.device)
    salt = torch.rand((n, 1, h, w), generator=generator, device="cpu").to(x.device) < 0.5
    hit = u < level
    out = x.clone()
    out = torch.where(hit & salt, torch.full_like(x, hi), out)
    return torch.where(hit & ~salt, torch.full_like(x, lo), out)


def noise_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str = "gaussian",
                     levels=(0.0, 0.1, 0.2, 0.4), steps: int = 10, seed: int = 0, batch_size: int = 64,
                     bounds=(0.0, 1.0), forward_kwargs: dict | None = None) -> dict:
    """Accuracy per noise level per readout step.

    Returns ``{"analysis": "noise", "kind", "levels", "steps", "seed", "n", "accuracy"}`` where
    ``accuracy[i][t]`` is the accuracy of step ``t + 1`` under ``levels[i]``. The noise for level i
    comes from ``torch.Generator().manual_seed(seed + i)``.
    """
    x, y = _check_xy(x, y)
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {', '.join(NOISE_KINDS)}")
    levels = [float(v) for v in levels]
    acc = []
    for i, level in enumerate(levels):
        g = torch.Generator().manual_seed(int(seed) + i)
        xn = add_noise(x, kind, level, generator=g, bounds=bounds)
        acc.append(step_accuracies(model, xn, y, steps, batch_size, forward_kwargs))
    return dict(analysis="noise", kind=kind, levels=levels, steps=int(steps), seed=int(seed), n=int(x.shape[0]),
                accuracy=acc)


# --------------------------------------------------------------------------- speed-accuracy

def speed_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 10, batch_size: int = 64,
                   forward_kwargs: dict | None = None) -> dict:
    """Accuracy of every readout step 1..steps and the area under that curve, ``auc`` = the mean
    accuracy over the steps (in [0, 1]: 1 means right from the first step)."""
    acc = step_accuracies(model, x, y, steps, batch_size, forward_kwargs)
    return dict(analysis="speed_accuracy", steps=int(steps), n=int(x.shape[0]), accuracy=acc,
                auc=float(sum(acc) / len(acc)), final=acc[-1])


# --------------------------------------------------------------------------- adversarial

class FinalStepLogits(nn.Module):
    """``images -> final-step logits`` of a recurrent classifier unrolled a fixed ``steps`` times
    (no halting), so gradients flow back through every step. Put the model in eval mode first."""

    def __init__(self, model: nn.Module, steps: int, forward_kwargs: dict | None = None):
        super().__init__()
        self.model = model
        self.steps = int(steps)
        self.forward_kwargs = dict(forward_kwargs or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, steps=self.steps, return_steps=True, **self.forward_kwargs).step_outputs[-1]


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none").sum()     # the loss Foolbox's attacks use


def _own_pgd(f, x0: torch.Tensor, y: torch.Tensor, eps: float, steps: int, stepsize: float,
             bounds=(0.0, 1.0)) -> torch.Tensor:
    """Untargeted L-inf PGD without random start (``steps=1, stepsize=eps`` is FGSM)::

        x = x0
        repeat steps times:
            g = d loss(f(x), y) / dx
            x = x + stepsize * sign(g)            # ascend the loss
            x = x0 + clip(x - x0, -eps, eps)      # back into the eps-ball
            x = clip(x, lo, hi)                   # back into the image bounds
    """
    lo, hi = bounds
    x0 = x0.detach()
    x = x0
    for _ in range(int(steps)):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            g, = torch.autograd.grad(_loss(f(x), y), x)
        x = x.detach() + stepsize * g.sign()
        x = x0 + (x - x0).clamp(-eps, eps)
        x = x.clamp(lo, hi)
    return x.detach()


def _own_fgsm(f, x0, y, eps, bounds=(0.0, 1.0)):
    return _own_pgd(f, x0, y, eps, steps=1, stepsize=eps, bounds=bounds)


def _foolbox_attack(attack: str, pgd_steps: int, rel_stepsize: float):
    try:
        import foolbox as fb
    except ImportError as e:   # pragma: no cover - depends on the install
        raise ImportError('library="foolbox" needs foolbox 3 (pip install "convrnn[analysis]"), '
                          'or use library="own"') from e
    if attack == "fgsm":
        return fb, fb.attacks.FGSM(random_start=False)
    return fb, fb.attacks.LinfPGD(rel_stepsize=rel_stepsize, steps=int(pgd_steps), random_start=False)


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, attack: str = "pgd",
                         steps: int = 10, pgd_steps: int = 10, rel_stepsize: float = 0.25, library: str = "own",
                         bounds=(0.0, 1.0), forward_kwargs: dict | None = None) -> torch.Tensor:
    """Adversarial versions of ``x`` (one batch) for L-inf radius ``eps`` on the final-step output."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    if library not in LIBRARIES:
        raise ValueError(f"unknown attack library {library!r}; choose from {', '.join(LIBRARIES)}")
    x, y = _check_xy(x, y)
    eps = float(eps)
    with _EvalMode(model):
        f = FinalStepLogits(model, steps, forward_kwargs).eval()
        if library == "own":
            if attack == "fgsm":
                return _own_fgsm(f, x, y, eps, bounds)
            return _own_pgd(f, x, y, eps, pgd_steps, rel_stepsize * eps, bounds)
        fb, atk = _foolbox_attack(attack, pgd_steps, rel_stepsize)
        fmodel = fb.PyTorchModel(f, bounds=tuple(float(b) for b in bounds), device=x.device)
        _, clipped, _ = atk(fmodel, x, y, epsilons=eps)
        return clipped.detach()


def adversarial_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list=(0.0, 0.01, 0.03, 0.1),
                         attack: str = "pgd", steps: int = 10, pgd_steps: int = 10, rel_stepsize: float = 0.25,
                         library: str = "foolbox", batch_size: int = 64, bounds=(0.0, 1.0),
                         forward_kwargs: dict | None = None) -> dict:
    """Accuracy under an untargeted L-inf attack on the final-step output, for each ``eps``.

    ``attack``: "fgsm" (one step of size eps) or "pgd" (``pgd_steps`` steps of size
    ``rel_stepsize * eps``, no random start). ``library``: "foolbox" (Foolbox 3) or "own"
    (:func:`_own_pgd`). Returns ``accuracy[i]`` (final step, under ``eps_list[i]``) and
    ``step_accuracy[i][t]`` (every readout step on the same adversarial images).
    """
    x, y = _check_xy(x, y)
    dev = _device(model)
    eps_list = [float(e) for e in eps_list]
    step_acc = []
    for eps in eps_list:
        correct = torch.zeros(steps, dtype=torch.long)
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            adv = xb if eps == 0 else adversarial_examples(model, xb, yb, eps, attack, steps, pgd_steps,
                                                            rel_stepsize, library, bounds, forward_kwargs)
            with torch.no_grad(), _EvalMode(model):
                so = model(adv, steps=steps, return_steps=True, **(forward_kwargs or {})).step_outputs
            correct += (so.argmax(-1) == yb.unsqueeze(0)).sum(1).cpu()
        step_acc.append((correct.double() / max(x.shape[0], 1)).tolist())
    return dict(analysis="adversarial", attack=attack, library=library, norm="linf", eps=eps_list, steps=int(steps),
                pgd_steps=int(pgd_steps) if attack == "pgd" else 1,
                rel_stepsize=float(rel_stepsize) if attack == "pgd" else 1.0, random_start=False,
                n=int(x.shape[0]), accuracy=[a[-1] for a in step_acc], step_accuracy=step_acc)


# --------------------------------------------------------------------------- report

def write_robustness_report(results: dict, out_dir) -> list[Path]:
    """Write ``results`` ({name: result dict from the functions above}) to ``out_dir``:
    ``robustness.json`` (atomic) and, when matplotlib is installed, one PNG per result —
    accuracy vs noise level (a line per readout step), accuracy vs step (speed-accuracy), and
    accuracy vs eps. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "robustness.json"]
    atomic_write_text(paths[0], json.dumps(results, indent=2, sort_keys=True) + "\n")
    plt = pyplot(optional=True)
    if plt is None:       # plots are optional
        return paths

    for name, r in results.items():
        kind = r.get("analysis") if isinstance(r, dict) else None
        if kind not in ("noise", "speed_accuracy", "adversarial"):
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        if kind == "noise":
            acc = r["accuracy"]
            n_steps = len(acc[0]) if acc else 0
            show = sorted({0, n_steps // 2, n_steps - 1}) if n_steps > 3 else range(n_steps)
            for t in show:
                ax.plot(r["levels"], [100 * a[t] for a in acc], "o-", label=f"step {t + 1}")
            ax.set_xlabel({"gaussian": "noise std", "salt_pepper": "fraction of pixels",
                           "blur": "blur sigma (pixels)"}.get(r["kind"], "level"))
            ax.set_title(f"Accuracy vs {r['kind']} noise")
        elif kind == "speed_accuracy":
            ax.plot(range(1, len(r["accuracy"]) + 1), [100 * a for a in r["accuracy"]], "o-")
            ax.set_xlabel("readout step")
            ax.set_title(f"Speed-accuracy (AUC {r['auc']:.3f})")
        else:
            ax.plot(r["eps"], [100 * a for a in r["accuracy"]], "o-", label="final step")
            ax.set_xlabel("L-inf eps")
            ax.set_title(f"Accuracy vs eps ({r['attack'].upper()}, {r['library']})")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        paths.append(save_figure(fig, out_dir / f"{name}.png"))
    return paths
