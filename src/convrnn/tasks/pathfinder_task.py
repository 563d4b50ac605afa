"""PathFinder trainer and evaluator glue: image labels, or the dense 3-class target.

``target="label"``: one label per image (1 = both markers on one contour), the paper's protocol.
Label-only training sat at chance on this CPU (benchmarks/RESULTS.md): the label is a long
conjunction of local facts with no partial credit.

``target="dense"``: a per-pixel map that a flood fill from both markers computes (built by
:func:`dense_target` from the generator's contour ids and marker positions):

    2  on the pixels of the contour carrying both markers    (a positive image)
    1  on the pixels of each contour carrying one marker     (a negative image: two contours)
    0  everywhere else, distractors included

It is symmetric under swapping the markers, so a negative image determines it (unlike the
generator's ``dense`` option, which marks the first marker's contour only). Ink pixels weigh
``ink_weight`` (x4) in the loss. **This uses generator metadata the paper's image-label setup does
not have**; RESULTS says so wherever it is used.

Deciding an image from the dense output (:func:`decide`): positive iff more pixels are predicted
class 2 than class 1 — "the two fills met" outvotes "two separate fills". Only the network's output
is used, no test-time metadata, so data from other generators (an LRA folder, labels only) is scored
the same way. A classification readout on top (the paper's 1x1 conv, global max-pool, linear) is
the second-stage alternative.
"""
from __future__ import annotations

import numpy as np

from ..errors import check_bool, check_choice, check_number
from .base import Task, parse_levels
from .pathfinder import PRESETS, generate_pathfinder, load_pathfinder

TARGETS = ("label", "dense")
#: what other PathFinder generators do differently, as variations of a preset's geometry: touching
#: contours (gap 0), distractors crossing the other contours, tighter or wider gaps between paddles, smaller or larger markers, thicker paddles,
#: sparser or denser clutter. A model trained on lra32 alone fell to chance on touching contours, wider
#: gaps or smaller markers (RESULTS). With ``vary=True`` every chunk of training images is drawn from
#: one combination (a seeded draw per chunk); validation and evaluation stay on the preset itself.
VARIATIONS = {"gap": (0, 1), "crossing": (False, True), "paddle_margin": (0.5, 1.0, 1.5),
              "marker_radius": (1.0, 1.5, 2.0), "paddle_thickness": (0.5, 0.75, 1.0), "distractor_budget": (15, 20, 30, 40)}
VARY_CHUNK = 256
#: canvases with one paddle geometry, each with the longest contour length tested on it (None: any);
#: a model trained on the first is evaluated on longer contours on the next canvas that holds them
LADDERS = {"lra32": (("lra32", 18), ("lra32_48", 30), ("lra32_64", None))}


def dense_target(contours: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """The 3-class map (uint8 (n, S, S)) from contour ids (n, S, S; 0 = background) and marker centres
    (n, 2, 2) as (row, col). A marker's contour is the most common non-zero id in the 3x3 window
    around its centre (the centre pixel of an anti-aliased disk is inked, but this does not rely on it)."""
    contours = np.asarray(contours)
    markers = np.asarray(markers, dtype=np.int64)
    if contours.ndim != 3 or markers.shape != (contours.shape[0], 2, 2):
        raise ValueError(f"dense_target: expected contours (n, S, S) and markers (n, 2, 2), got {contours.shape} "
                         f"and {markers.shape}")
    n, S, _ = contours.shape
    out = np.zeros(contours.shape, np.uint8)
    for i in range(n):
        ids = []
        for r, c in markers[i]:
            win = contours[i, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].ravel()
            win = win[win != 0]
            if win.size == 0:
                raise ValueError(f"dense_target: image {i}: no contour under the marker at ({r}, {c})")
            vals, counts = np.unique(win, return_counts=True)
            ids.append(vals[np.argmax(counts)])
        if ids[0] == ids[1]:
            out[i][contours[i] == ids[0]] = 2
        else:
            out[i][(contours[i] == ids[0]) | (contours[i] == ids[1])] = 1
    return out


def decide(logits):
    """Image labels (B,) from dense 3-class logits (B, 3, H, W): 1 iff #(argmax == 2) > #(argmax == 1)."""
    pred = logits.argmax(1)
    return ((pred == 2).flatten(1).sum(1) > (pred == 1).flatten(1).sum(1)).long()


def image_labels(target):
    """Image labels (B,) from labels (B,) or dense targets (B, H, W) (positive iff any pixel is class 2)."""
    return target if target.dim() == 1 else (target == 2).flatten(1).any(1).long()


def final_features(model, x, steps: int, batch_size: int = 256):
    """The state the readout sees after ``steps`` fixed steps (B, width, H, W), batch by batch, no grad."""
    import torch
    feats = []
    hook = model.readout.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach().float()))
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size], steps=steps)
    finally:
        hook.remove()
    return torch.cat(feats)


def fit_label_readout(model, x, y, steps: int, *, epochs: int = 30, lr: float = 3e-3, batch_size: int = 64,
                      seed: int = 0):
    """The paper's classification readout (1x1 conv, global max-pool, linear; ``layers.MaxPoolHead``)
    trained label-only as a second stage on a frozen backbone's state after ``steps`` steps.
    ``x``: images, ``y``: image labels (B,). Returns the head (eval mode); decide an image with
    ``head(final_features(model, x, steps)).argmax(1)``."""
    import torch
    import torch.nn.functional as F

    from ..layers import MaxPoolHead
    model.eval()
    feats = final_features(model, x, steps)
    torch.manual_seed(seed)
    head = MaxPoolHead(feats.shape[1], 2)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(feats), generator=g)
        for i in range(0, len(feats), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(head(feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def _draw(n, length, preset, seed, dense: bool) -> dict:
    """``generate_pathfinder`` plus the dense target (``dense3``) when asked."""
    d = generate_pathfinder(int(n), int(length), preset, seed=seed, return_contours=dense)
    if dense:
        d["dense3"] = dense_target(d["contours"], d["markers"])
    return d


class PathfinderTask(Task):
    """Images scaled to [0, 1] with one channel. ``preset`` picks the canvas (see
    :data:`~convrnn.tasks.pathfinder.PRESETS`), ``target`` the supervision (see the module docstring),
    ``ink_weight`` the loss weight of inked pixels with the dense target, ``vary`` the training
    variations (:data:`VARIATIONS`). The training config's ``data_kwargs`` set them."""

    name = "pathfinder"
    OPTIONS = ("preset", "target", "ink_weight", "vary")

    def __init__(self, preset: str = "lra32", target: str = "label", ink_weight: float = 4.0, vary: bool = False,
                 **unknown):
        if unknown:
            raise ValueError(f"pathfinder data_kwargs: unknown key(s) {sorted(unknown)}; valid: "
                             f"{', '.join(self.OPTIONS)}")
        if preset not in PRESETS:
            raise ValueError(f"unknown PathFinder preset {preset!r}; valid: {', '.join(PRESETS)}")
        check_choice("PathFinder target", target, TARGETS)
        check_number("PathFinder ink_weight", ink_weight, 0, min_open=True)
        check_bool("PathFinder vary", vary)
        self.preset, self.target, self.ink_weight, self.vary = preset, target, float(ink_weight), vary

    def options(self) -> dict:
        return {k: getattr(self, k) for k in self.OPTIONS}

    @staticmethod
    def step_cap(length, train_steps) -> int:
        """Default iteration cap at contour length ``length``: 4 steps per paddle (the fill advances about one
        paddle per 1-2 steps), at least 4x training."""
        return max(4 * int(train_steps), 4 * int(length))

    def canvas(self, length) -> str:
        """The preset contour length ``length`` is generated on: ``preset`` itself, or for a preset with a
        ladder of larger canvases (:data:`LADDERS`; lra32 holds lengths up to 18) the first that holds it."""
        for name, top in LADDERS.get(self.preset, ((self.preset, None),)):
            if top is None or int(length) <= top:
                return name
        raise AssertionError("unreachable: every ladder ends with an open canvas")

    def level_info(self, length) -> dict:
        return {"canvas": self.canvas(length)}

    @classmethod
    def eval_levels(cls, args) -> list:
        return parse_levels(args.lengths)

    @classmethod
    def eval_options(cls, args, run_config: dict) -> dict:
        """The canvas preset: ``--preset``, else the training run's."""
        preset = args.preset or run_config.get("data_kwargs", {}).get("preset")
        return {"preset": preset} if preset else {}

    def _generate(self, n, length, seed, dense: bool = False, vary: bool = False):
        """Images, labels, markers (and ``dense3``); with ``vary`` in chunks of :data:`VARY_CHUNK`, each
        from one draw of :data:`VARIATIONS` (chunk ``k`` depends on ``(seed, k)`` only)."""
        import dataclasses
        keys = ("images", "labels", "markers") + (("dense3",) if dense else ())
        if not vary:
            return _draw(n, length, self.canvas(length), seed, dense)
        base = PRESETS[self.canvas(length)]
        parts = []
        for k, start in enumerate(range(0, int(n), VARY_CHUNK)):
            rng = np.random.default_rng([int(seed) % (1 << 32), k])
            variant = {name: values[rng.integers(len(values))] for name, values in VARIATIONS.items()}
            d = _draw(min(VARY_CHUNK, int(n) - start), length, dataclasses.replace(base, **variant),
                      int(seed) * 1_000_003 + k, dense)
            parts.append({key: d[key] for key in keys})
        return {key: np.concatenate([p[key] for p in parts]) for key in keys}

    def _tensors(self, data):
        import torch
        x = torch.from_numpy(np.ascontiguousarray(data["images"])).float().div_(255.0).unsqueeze(1)
        if "dense3" in data:
            return x, torch.from_numpy(data["dense3"].astype(np.int64))
        return x, torch.from_numpy(np.asarray(data["labels"], dtype=np.int64))

    def datasets(self, cfg):
        self.check_config(cfg)
        if cfg.data:
            if self.target == "dense":
                raise ValueError("pathfinder target=dense needs contour ids, which only generated data has; "
                                 "train with target=label on a data folder")
            train = load_pathfinder(cfg.data)
        else:
            train = self._generate(cfg.n_train, cfg.train_size, cfg.seed, dense=self.target == "dense", vary=self.vary)
        val = self._generate(cfg.n_val, cfg.val_size or cfg.train_size, cfg.seed + 1_000_003)   # labels: scored
        return self._tensors(train), self._tensors(val)

    def criterion(self, x, cfg):
        from ..losses import cross_entropy
        if self.target == "label":
            return cross_entropy

        weight = 1.0 + (self.ink_weight - 1.0) * (x[:, 0] > 0).float()       # ink pixels x ink_weight

        def crit(logits, target, reduce=True):
            return cross_entropy(logits, target, reduce=reduce, weight_mask=weight)
        return crit

    def correct(self, logits, target, x):
        """Image-level correctness: the dense output decided by :func:`decide`, against labels or dense
        targets alike (so labels-only data from other generators is scored the same way)."""
        pred = decide(logits) if logits.dim() == 4 else logits.argmax(1)
        return pred == image_labels(target)

    def eval_data(self, length, n, seed, data=None):
        """Images and labels (``correct`` decides dense outputs itself; other generators' data has labels only)."""
        x, y = self._tensors(load_pathfinder(data) if data else self._generate(n, length, seed))
        return x[:n], y[:n]

    def plot_fill(self, model, length, path, seed: int = 2026, halting="learned", max_steps: int = 80,
                  device="cpu", shown=(1, 3, 6, 10, 15)):
        """The per-pixel answer growing step by step on one positive image of ``length``: the image,
        the answer map after the ``shown`` steps, and at the step the halting picks."""
        import torch

        from ..analysis.plots import pyplot, save_figure
        plt = pyplot()
        x, y = self.eval_data(length, 16, seed)
        i = int(torch.nonzero(y == 1)[0])
        with torch.no_grad():
            model.eval()
            out = model(x[i:i + 1].to(device), steps=max_steps, halting=halting, return_steps=True, shrink=False)
        halted = int(out.steps[0])
        steps = [s for s in shown if s < halted] + [halted]
        fig, axes = plt.subplots(1, len(steps) + 1, figsize=(1.7 * (len(steps) + 1), 2.1))
        axes[0].imshow(x[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0].set_title(f"length {length}", fontsize=8)
        for ax, s in zip(axes[1:], steps):
            ax.imshow(out.step_outputs[s - 1, 0].argmax(0).cpu().numpy(), cmap="viridis", vmin=0, vmax=2,
                      interpolation="nearest")
            ax.set_title(f"step {s}" + (" (halted)" if s == halted else ""), fontsize=8)
        for ax in axes:
            ax.axis("off")
        fig.suptitle("The fill grows from both markers (teal: one marker, yellow: both markers)", fontsize=9)
        return save_figure(fig, path)

    def plot_examples(self, model, result, path, level=None, device="cpu", n_examples=8):
        """A row of test images with label, prediction and steps used under the evaluated halting
        (dense models: the predicted map below each image)."""
        import torch

        from ..analysis.plots import pyplot, save_figure
        plt = pyplot()

        level = str(level or list(result["levels"])[-1])
        x, y = self.eval_data(level, n_examples, result["seed"], result.get("data"))
        max_steps = result["levels"][level].get("max_steps") or result.get("max_steps") or model.config.steps
        with torch.no_grad():
            model.eval()
            out = model(x.to(device), steps=int(max_steps), halting=result["halting"])
        dense = out.output.dim() == 4
        pred = (decide(out.output) if dense else out.output.argmax(1)).cpu()
        labels = image_labels(y)
        rows = 2 if dense else 1
        fig, axes = plt.subplots(rows, len(x), figsize=(1.6 * len(x), 1.8 * rows + 0.2), squeeze=False)
        for i in range(len(x)):
            ax = axes[0][i]
            ax.imshow(x[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ok = "✓" if pred[i] == labels[i] else "✗"
            ax.set_title(f"{'same' if labels[i] else 'diff'} {ok}\n{int(out.steps[i])} steps", fontsize=7)
            ax.axis("off")
            if dense:
                axes[1][i].imshow(out.output[i].argmax(0).cpu().numpy(), cmap="viridis", vmin=0, vmax=2,
                                  interpolation="nearest")
                axes[1][i].axis("off")
        fig.suptitle(f"PathFinder, contour length {level}" + (" (below: 0 / 1 one marker / 2 both)" if dense else ""),
                     fontsize=9)
        return save_figure(fig, path)
