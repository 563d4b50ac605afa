"""Trainer/evaluator glue for mazes (data, masked loss, whole-maze accuracy, step caps, example plots);
the generator, families and file formats are in :mod:`convrnn.tasks.mazes`."""
from __future__ import annotations

import numpy as np

from .base import Task, parse_levels
from .mazes import cells_per_side, family_options, generate_mazes, generate_mixture, load_mazes, maze_accuracy, wall_mask


class MazeTask(Task):
    """Trainer/evaluator glue for mazes: data, masked loss, whole-maze accuracy, example plots.

    ``family`` (a key of :data:`FAMILIES`) picks the mazes :meth:`eval_data` makes (default ``dfs``).
    The training options (the config's ``data_kwargs``) either pass generator options through
    (``algorithm``, ``start_dead_end``, ``cycles``, ``unique_path``) or ask for a mixture: ``families``
    (a list of family names) and/or ``sizes`` (a list of maze sizes, padded to the largest; default
    ``[train_size]``); validation is drawn from the same mixture.
    """

    name = "mazes"
    GENERATOR_OPTIONS = ("algorithm", "start_dead_end", "cycles", "unique_path")
    MIXTURE_OPTIONS = ("families", "sizes")
    OPTIONS = ("family",) + GENERATOR_OPTIONS + MIXTURE_OPTIONS

    def __init__(self, family: str = "dfs", **data_kwargs):
        family_options(family)
        self.family = family
        opts = dict(data_kwargs)
        unknown = set(opts) - set(self.GENERATOR_OPTIONS) - set(self.MIXTURE_OPTIONS)
        if unknown:
            raise ValueError(f"mazes data_kwargs: unknown key(s) {sorted(unknown)}; valid: "
                             f"{', '.join(self.GENERATOR_OPTIONS + self.MIXTURE_OPTIONS)} (and family, for eval)")
        if set(opts) & set(self.MIXTURE_OPTIONS):
            if set(opts) & set(self.GENERATOR_OPTIONS):
                raise ValueError("mazes data_kwargs: give either a mixture (families, sizes) or generator options "
                                 f"({', '.join(self.GENERATOR_OPTIONS)}), not both")
            families, sizes = opts.get("families", ["dfs"]), opts.get("sizes", [])
            if isinstance(families, str) or isinstance(sizes, (str, int)):
                raise ValueError(f"mazes data_kwargs: families and sizes must be lists, got {families!r} and "
                                 f"{sizes!r}")
        self._data_kwargs = opts

    def options(self) -> dict:
        return {"family": self.family, **self._data_kwargs}

    sample_difficulty_name = "solution length"

    @staticmethod
    def sample_difficulty(x, y):
        """Each maze's solution length in grid pixels (the target's 2x2 blocks)."""
        return (y.reshape(len(y), -1).sum(1) / 4).tolist()

    @staticmethod
    def step_cap(size, train_steps) -> int:
        """Default iteration cap at maze size ``size``: twice the cell count ``m^2`` (a corridor can be
        that long; the GPU model used up to 291 steps at 33x33, m^2 = 289), at least 4x training."""
        m = cells_per_side(int(size))
        return max(4 * int(train_steps), 2 * m * m)

    def report_info(self) -> dict:
        return {"family": self.family}

    @classmethod
    def eval_levels(cls, args) -> list:
        return parse_levels(args.sizes)

    @classmethod
    def eval_options(cls, args, run_config: dict) -> dict:
        return {"family": args.family}

    @classmethod
    def options_at_level(cls, data_kwargs: dict, level) -> dict:
        """A mixture keeps its families at this one size (its ``sizes`` would override ``train_size``)."""
        opts = dict(data_kwargs)
        if "sizes" in opts:
            opts["sizes"] = [level]
        return opts

    def _train_data(self, n, size, seed):
        opts = self._data_kwargs
        if not set(opts) & set(self.MIXTURE_OPTIONS):
            return generate_mazes(n, size, seed=seed, **opts)
        return generate_mixture(n, opts.get("sizes", [size]), seed, families=opts.get("families", ["dfs"]))

    def datasets(self, cfg):
        if "family" in cfg.data_kwargs:        # eval's option: training takes a list of families
            raise ValueError("mazes data_kwargs: unknown key(s) ['family']; valid: "
                             f"{', '.join(self.GENERATOR_OPTIONS + self.MIXTURE_OPTIONS)} (train on one family with "
                             "families: [name])")
        self.check_config(cfg)
        if cfg.data:
            x, y = load_mazes(cfg.data)
        else:
            x, y = self._train_data(cfg.n_train, cfg.train_size, cfg.seed)
        xv, yv = self._train_data(cfg.n_val, cfg.val_size or cfg.train_size, cfg.seed + 1_000_003)
        return self._tensors(x, y), self._tensors(xv, yv)

    @staticmethod
    def _tensors(x, y):
        import torch
        return torch.from_numpy(np.ascontiguousarray(x)).float(), torch.from_numpy(y.astype(np.int64))

    @staticmethod
    def open_mask(x):
        """(B, H, W) float, 1 on non-wall pixels of the input images."""
        return wall_mask(x).to(x.dtype)

    def predict(self, logits, x):
        """Per-pixel path labels; walls can never be path."""
        return logits.argmax(1) * self.open_mask(x).long()

    def criterion(self, x, cfg):
        """Cross-entropy weighted per pixel: open pixels 1, path pixels ``path_weight``, walls
        ``wall_weight`` (DeepThinking masks walls out entirely, i.e. ``wall_weight=0``; a small weight
        keeps the output on walls confident, which confidence-based halting relies on)."""
        from ..losses import cross_entropy
        open_ = self.open_mask(x).float()
        base = open_ + float(cfg.wall_weight) * (1 - open_)
        pw = float(cfg.path_weight)

        def crit(logits, target, reduce=True):
            w = base if pw == 1.0 else base * (1 + (pw - 1) * target.float())
            return cross_entropy(logits, target, reduce=reduce, weight_mask=w)
        return crit

    def correct(self, logits, target, x):
        return maze_accuracy(self.predict(logits, x), target)

    def eval_data(self, size, n, seed, data=None):
        if data:
            x, y = load_mazes(data)
            x, y = x[:n], y[:n]
        else:
            x, y = generate_mazes(n, int(size), seed=seed, **family_options(self.family))
        return self._tensors(x, y)

    def plot_examples(self, model, result, path, level=None, device="cpu", n_examples=3):
        """Grid: input, prediction after several fixed step counts, prediction with halting, target."""
        import torch

        from ..analysis.plots import pyplot, save_figure
        plt = pyplot()

        levels = list(result["levels"])
        level = str(level or levels[-1])
        lv = result["levels"][level]
        x, y = self.eval_data(level, n_examples, result["seed"], result.get("data"))
        x = x.to(device)
        cap = lv.get("max_steps") or len(lv.get("curve", [])) or max(1, int(round(lv["mean_steps"] * 2)))
        halting = result["policies"][0] if result.get("mode") == "compare" else result["halting"]
        preds = {}

        def on_step(n, idx, yn):
            if n in shown:
                preds[n] = self.predict(yn, x[idx]).cpu()
        with torch.no_grad():
            model.eval()
            halted = model(x, steps=cap, halting=halting)
            last = int(halted.steps.max())        # fixed-step panels up to the longest halted example
            shown = sorted({1, max(1, last // 8), max(1, last // 4), max(1, last // 2), last})
            model(x, steps=last, halting="fixed", on_step=on_step)
        cols = len(shown) + 3
        fig, axes = plt.subplots(n_examples, cols, figsize=(1.7 * cols, 1.8 * n_examples), squeeze=False)
        for r in range(n_examples):
            img = x[r].permute(1, 2, 0).cpu().numpy()
            panels = [("input", img)] + [(f"step {s}", preds[s][r]) for s in shown]
            hp = self.predict(halted.output[r:r + 1], x[r:r + 1])[0].cpu()
            ok = bool((hp == y[r]).all())
            panels += [(f"halted @{int(halted.steps[r])} {'✓' if ok else '✗'}", hp), ("target", y[r])]
            for c, (title, im) in enumerate(panels):
                ax = axes[r][c]
                ax.imshow(im if c == 0 else im.numpy(), cmap=None if c == 0 else "gray", interpolation="nearest")
                ax.set_title(title, fontsize=7)
                ax.axis("off")
        fig.suptitle(f"{level}x{level} mazes", fontsize=9)
        return save_figure(fig, path)
