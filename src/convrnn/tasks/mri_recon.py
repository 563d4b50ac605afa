"""MRI reconstruction as a task: trainer glue, fastMRI-style evaluation, a compressed-sensing baseline.

Data, masks, FFTs and metrics live in :mod:`convrnn.mri`; this module connects them to
``convrnn train`` and ``convrnn eval --task mri``.

Training (``task: mri``): the tensors handed to the trainer are the *fully sampled* k-space
``(N, 2C, H, W)`` and the magnitude targets ``(N, h, w)``.  Every optimizer step draws a fresh
Cartesian mask per slice (acceleration chosen among ``data_kwargs.accelerations``; mask seed
``[seed, step, i]``, so a resumed run sees the same masks), reconstructs, centre-crops the
magnitude to the target size and minimises ``NMSE + ssim_weight * (1 - SSIM)``
(:func:`convrnn.mri.metrics.nmse_ssim_loss`).  Validation uses fixed masks (alternating
accelerations) and reports the mean per-slice SSIM (``MRITask.metric``) in the ``val_acc`` column of
``metrics.csv``, whose ``val_metric`` column says ``ssim``.

Data: phantoms generated in memory (``data_kwargs``: ``size``, ``slices``, ``coils``;
``n_train``/``n_val`` count slices; training volumes from seed ``seed``, validation volumes from
``seed + 1000003``), or fastMRI h5 files: ``data: DIR`` for training and ``data_kwargs.val_data``
for validation, at most ``n_train``/``n_val`` slices each, loaded into memory; volumes whose
k-space shape differs from the first volume's are skipped (fastMRI knee widths vary a little).

Evaluation (:func:`evaluate_reconstruction`) follows fastMRI (Zbontar et al. 2018): metrics per
volume on magnitude images centre-cropped to the target size, ``maxval`` the target volume's max,
then mean and standard deviation over volumes; masks are seeded per file and slice
(:class:`~convrnn.mri.data.MRISliceDataset`).

Models plug in through one method, ``model.reconstruct(kspace_masked, mask, steps, forward=...)
-> (B, H, W)`` magnitude (PC-RNN and the U-Net define it; ``steps`` is the iterations per module, the
task's ``iterations``); the task does not know the classes.
"""
from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..analysis.plots import pyplot, save_figure
from ..errors import check_choice, check_keys, check_number
from ..models.pcrnn import PCRNN
from ..mri.data import MRISliceDataset, _collect_paths
from ..mri.fft import channels_to_complex, complex_to_channels, rss, zero_filled
from ..mri.h5 import MRIDataError, read_volume
from ..mri.masks import MASK_KINDS, MASKS, make_mask
from ..mri.metrics import center_crop, nmse, nmse_ssim_loss, psnr, ssim
from ..mri.phantoms import check_phantom_options, phantom_volume, write_phantom_volumes
from .base import Task

DATA_KEYS = ("size", "slices", "coils", "accelerations", "mask_kind", "ssim_weight", "val_data")


def _core(model):
    return getattr(model, "module", model)       # unwrap DistributedDataParallel


def reconstruct(model, kspace_masked: torch.Tensor, mask: torch.Tensor, iterations=None) -> torch.Tensor:
    """Magnitude reconstruction ``(B, H, W)`` from masked k-space ``(B, 2C, H, W)`` and masks
    ``(B, 1, 1, W)`` by the model's own ``reconstruct`` method (PC-RNN takes the k-space, with
    ``iterations`` per module optional; the U-Net the zero-filled RSS magnitude).  The call runs
    through ``model`` itself, so a DistributedDataParallel wrapper still synchronises gradients."""
    core = _core(model)
    fn = getattr(core, "reconstruct", None)
    if not callable(fn):
        raise ValueError(f"mri task: expected a 'pcrnn' or 'unet_mri' model, got {type(core).__name__}")
    return fn(kspace_masked, mask, iterations, forward=model)


def model_iterations(model) -> int:
    """Total recurrent iterations of a model (PC-RNN: sum over modules; U-Net: 1)."""
    its = getattr(getattr(_core(model), "config", None), "iterations", None)
    return int(sum(its)) if its else 1


def _match(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both centre-cropped to ``min(pred, target)`` per dimension, as fastMRI's evaluation does (knee:
    the 640-row oversampled image to the 320x320 target; brain: targets may be wider than the image)."""
    if pred.shape[-2:] == target.shape[-2:]:
        return pred, target
    size = tuple(min(a, b) for a, b in zip(pred.shape[-2:], target.shape[-2:]))
    return center_crop(pred, size), center_crop(target, size)


def _phantom_set(n_slices: int, seed: int, size: int, slices: int, coils: int):
    vols = [phantom_volume(seed, v, slices, size, coils) for v in range(math.ceil(n_slices / slices))]
    k = np.concatenate([v[0] for v in vols])[:n_slices]
    t = np.concatenate([v[1] for v in vols])[:n_slices]
    return _as_tensors(k, t)


def _as_tensors(kspace: np.ndarray, target: np.ndarray):
    k = torch.from_numpy(kspace)
    if k.dim() == 3:
        k = k.unsqueeze(1)                      # (N, 1, H, W): one coil
    return complex_to_channels(k).flatten(1, 2).contiguous(), torch.from_numpy(np.ascontiguousarray(target))


def load_slices(path, limit: int):
    """Up to ``limit`` fully sampled slices of the fastMRI volumes in ``path`` (a folder or a file) as
    ``(kspace (N, 2C, H, W), targets (N, h, w))``; the target is ``reconstruction_esc`` for
    single-coil files, else ``reconstruction_rss``."""
    ks, ts, shape, skipped = [], [], None, 0
    for p in _collect_paths(path):
        vol = read_volume(p)
        if vol["mask"] is not None:
            raise MRIDataError(f"{p}: an undersampled test file (it stores a mask); training needs full k-space")
        key = "reconstruction_esc" if "reconstruction_esc" in vol and not vol["multicoil"] else "reconstruction_rss"
        if key not in vol:
            raise MRIDataError(f"{p}: no target {key!r}; training needs fully sampled files with targets")
        if shape is None:
            shape = (vol["kspace"].shape[1:], vol[key].shape[1:])
        if (vol["kspace"].shape[1:], vol[key].shape[1:]) != shape:
            skipped += 1
            continue
        ks.append(vol["kspace"])
        ts.append(vol[key])
        if sum(len(k) for k in ks) >= limit:
            break
    if not ks:
        raise MRIDataError(f"{path}: no usable volumes")
    if skipped:
        print(f"mri: skipped {skipped} volume(s) of {path} whose k-space/target shape differs from {shape}")
    return _as_tensors(np.concatenate(ks)[:limit], np.concatenate(ts)[:limit])


class MRITask(Task):
    """Trainer glue for MRI reconstruction (see the module docstring). Options (the config's
    ``data_kwargs``): ``accelerations``, ``mask_kind``, ``ssim_weight``; phantoms' ``size``, ``slices``,
    ``coils``; ``val_data`` (the validation folder with ``data: DIR``)."""

    name = "mri"
    metric = "ssim"            # validation: mean per-slice SSIM (in metrics.csv's val_acc column)

    def __init__(self, accelerations=("4x", "8x"), mask_kind: str = "random", ssim_weight: float = 1.0,
                 size: int = 64, slices: int = 16, coils: int = 0, val_data=None, **unknown):
        check_keys("mri data_kwargs", unknown, DATA_KEYS)
        accs = (accelerations,) if isinstance(accelerations, str) else tuple(accelerations)
        if not accs or any(a not in MASKS for a in accs):
            raise ValueError(f"mri: accelerations must be a non-empty list of {sorted(MASKS)}, got {list(accs)}")
        check_choice("mri: mask_kind", mask_kind, MASK_KINDS)
        check_number("mri data_kwargs: ssim_weight", ssim_weight, 0)
        check_phantom_options(slices, size, coils)       # here, not when the phantoms are made
        self._accelerations_arg = accelerations
        self.accelerations, self.mask_kind, self.ssim_weight = accs, mask_kind, float(ssim_weight)
        self.size, self.slices, self.coils, self.val_data = size, slices, coils, val_data

    def options(self) -> dict:
        return {"accelerations": self._accelerations_arg, "mask_kind": self.mask_kind, "ssim_weight": self.ssim_weight,
                "size": self.size, "slices": self.slices, "coils": self.coils, "val_data": self.val_data}

    def datasets(self, cfg):
        self.check_config(cfg)
        if cfg.loss != "final":
            raise ValueError(f"mri: the objective is NMSE + ssim_weight * (1 - SSIM) of the final reconstruction; "
                             f"set loss=final (got loss={cfg.loss!r})")
        if cfg.data:
            train = load_slices(cfg.data, cfg.n_train)
            if not self.val_data:
                raise ValueError("mri: with data=DIR also give data_kwargs.val_data=DIR (fastMRI's val folder)")
            val = load_slices(self.val_data, cfg.n_val)
        else:
            train = _phantom_set(cfg.n_train, cfg.seed, self.size, self.slices, self.coils)
            val = _phantom_set(cfg.n_val, cfg.seed + 1_000_003, self.size, self.slices, self.coils)
        return train, val

    def masks(self, n: int, width: int, seed, fixed: bool = False, offset: int = 0) -> torch.Tensor:
        """``(n, 1, 1, width)`` masks for samples ``offset .. offset + n - 1`` of a batch: sample ``j``
        gets acceleration ``accelerations[j % len]`` with ``fixed``, else the ``j``-th draw of
        ``default_rng(seed)``; its mask seed is ``[*seed, j]``.  With ``offset`` (the process's share
        of a data-parallel batch) every process draws the masks one process would."""
        seed = list(seed)
        draws = np.random.default_rng(seed).integers(len(self.accelerations), size=offset + n)
        out = []
        for j in range(offset, offset + n):
            acc = self.accelerations[j % len(self.accelerations) if fixed else int(draws[j])]
            out.append(make_mask(acc, width, seed + [j], self.mask_kind))
        return torch.stack(out).reshape(n, 1, 1, width)

    def loss(self, net, x, y, cfg, step: int) -> torch.Tensor:
        import torch.distributed as dist
        offset = dist.get_rank() * len(x) if dist.is_available() and dist.is_initialized() else 0
        mask = self.masks(len(x), x.shape[-1], [cfg.seed, step], offset=offset).to(x.device)
        pred, y = _match(reconstruct(net, x * mask, mask), y)
        return nmse_ssim_loss(pred.float(), y.float(), alpha=self.ssim_weight)

    @torch.no_grad()
    def validate(self, model, x, y, cfg, device) -> tuple[float, float]:
        """Mean per-slice SSIM with fixed masks (slice ``j`` of the validation set: acceleration
        ``j % len``, mask seed ``[999983, j]``, whatever the batch size or run seed), and the
        model's iteration count."""
        model.eval()
        scores = []
        for i in range(0, len(x), cfg.batch_size):
            xb, yb = x[i:i + cfg.batch_size].to(device), y[i:i + cfg.batch_size]
            mask = self.masks(len(xb), xb.shape[-1], [999_983], fixed=True, offset=i).to(device)
            pred, yb = _match(reconstruct(model, xb * mask, mask).float().cpu(), yb)
            scores += [ssim(t, p, maxval=float(t.max())) for t, p in zip(yb, pred)]
        return float(np.mean(scores)), float(model_iterations(model))


# ---- compressed sensing (sigpy) ---------------------------------------------------------------

CS_MAX_ITER = 100


def cs_reconstruct(kspace_masked: torch.Tensor, mask: torch.Tensor, lamda: float = 0.003,
                   max_iter: int = CS_MAX_ITER) -> torch.Tensor:
    """Compressed-sensing reconstruction (Lustig et al. 2007): per coil,
    ``argmin_x 1/2 ||D F x - y||^2 + lamda ||Psi x||_1`` with a Daubechies-4 wavelet ``Psi``,
    solved by sigpy's ``L1WaveletRecon`` (FISTA/ADMM; sigpy uses the same centred orthonormal FFT).
    The k-space is scaled so the zero-filled image has max 1, which makes ``lamda`` scale-free.
    Input ``(2C, H, W)`` masked k-space and ``(W,)``-broadcastable mask; output RSS ``(H, W)``."""
    from ..errors import require
    require("sigpy", "mri")
    import sigpy.mri
    k = channels_to_complex(kspace_masked.detach().cpu()).numpy().astype(np.complex128)
    k = k.reshape(-1, *k.shape[-2:])                                                     # (C, H, W)
    w = np.broadcast_to(mask.detach().cpu().numpy().reshape(1, 1, -1) != 0, k.shape).astype(np.float64)
    scale = float(rss(zero_filled(torch.from_numpy(k)), dim=0).max()) or 1.0
    coils = []
    for c in range(k.shape[0]):
        y = (k[c] / scale)[None]
        app = sigpy.mri.app.L1WaveletRecon(y, np.ones_like(y), lamda, weights=w[c][None], max_iter=max_iter,
                                           show_pbar=False)
        coils.append(app.run() * scale)
    return torch.from_numpy(np.sqrt(sum(np.abs(c) ** 2 for c in coils))).float()


# ---- evaluation --------------------------------------------------------------------------------

def _volume_set(data, acceleration: str, seed: int, mask_kind: str, per_volume: bool = False) -> MRISliceDataset:
    return MRISliceDataset(data, mask=(acceleration, seed, mask_kind), mask_per_volume=per_volume)


def _volumes(ds: MRISliceDataset):
    """``(fname, {kspace_masked, mask, target})`` per volume, in file order, one volume in memory at
    a time (the dataset's index lists each file's slices together)."""
    for fi, group in itertools.groupby(range(len(ds)), key=lambda i: ds.index[i][0]):
        items = [ds[i] for i in group]
        yield ds.files[fi].name, {k: torch.stack([it[k] for it in items]) for k in ("kspace_masked", "mask", "target")}


def _scores(gt: torch.Tensor, pred: torch.Tensor) -> dict:
    pred, gt = _match(pred, gt)
    return {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred), "ssim": ssim(gt, pred)}


def _summary(per_volume: list[dict]) -> dict:
    out = {}
    for m in ("nmse", "psnr", "ssim"):
        v = np.array([d[m] for d in per_volume])
        out[m] = float(v.mean())
        out[m + "_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    out["volumes"] = len(per_volume)
    return out


@torch.no_grad()
def _predict(model, vol, device, batch_size, iterations=None) -> torch.Tensor:
    out = []
    for i in range(0, len(vol["kspace_masked"]), batch_size):
        k = vol["kspace_masked"][i:i + batch_size].to(device)
        m = vol["mask"][i:i + batch_size].to(device)
        out.append(reconstruct(model, k, m, iterations).float().cpu())
    return torch.cat(out)


def evaluate_reconstruction(models: dict, data, accelerations=("4x", "8x"), *, seed: int = 0,
                            mask_kind: str = "random", iterations=None, cs_lambda: float | None = None,
                            device: str = "cpu", batch_size: int = 16, progress: bool = True,
                            mask_per_volume: bool = False) -> dict:
    """Volume-wise NMSE/PSNR/SSIM of zero-filled, each model in ``models`` (name -> model) and, with
    ``cs_lambda``, compressed sensing, at each acceleration; with ``iterations`` (a list of ints),
    also every PC-RNN's quality with that many iterations in every module."""
    from tqdm.auto import tqdm
    for m in models.values():
        m.eval().to(device)
    res = {"schema": "convrnn.mri_eval/1", "data": str(data), "seed": int(seed), "mask_kind": mask_kind,
           "mask_per_volume": bool(mask_per_volume),
           "accelerations": {}, "models": {n: {"architecture": type(m).__name__, "config": m.config.to_dict(),
                                               "iterations": model_iterations(m)} for n, m in models.items()}}
    for acc in accelerations:
        per = {"zero_filled": []}
        sweep = {}
        times = {}
        ds = _volume_set(data, acc, seed, mask_kind, mask_per_volume)
        for fname, vol in tqdm(_volumes(ds), total=len(ds.files), desc=f"eval {acc}", disable=None if progress
                               else True, leave=False):
            gt = vol["target"]
            zf = rss(zero_filled(vol["kspace_masked"]), dim=1)
            per["zero_filled"].append(_scores(gt, zf))
            for name, model in models.items():
                t0 = time.perf_counter()
                scores = _scores(gt, _predict(model, vol, device, batch_size))
                per.setdefault(name, []).append(scores)
                times[name] = times.get(name, 0.0) + (time.perf_counter() - t0) / len(gt)
                if iterations and isinstance(_core(model), PCRNN):
                    for t in iterations:
                        its = (int(t),) * len(model.config.scales)
                        if its != tuple(model.config.iterations):      # the trained count is scored above
                            scores_t = _scores(gt, _predict(model, vol, device, batch_size, its))
                        else:
                            scores_t = scores
                        sweep.setdefault(name, {}).setdefault(int(t), []).append(scores_t)
            if cs_lambda is not None:
                t0 = time.perf_counter()
                pred = torch.stack([cs_reconstruct(k, m, cs_lambda) for k, m in zip(vol["kspace_masked"], vol["mask"])])
                per.setdefault("cs_l1_wavelet", []).append(_scores(gt, pred))
                times["cs_l1_wavelet"] = times.get("cs_l1_wavelet", 0.0) + (time.perf_counter() - t0) / len(gt)
        n_vol = len(per["zero_filled"])
        res["accelerations"][acc] = {
            "methods": {n: {**_summary(v), "per_volume": v, **({"ms_per_slice": 1000 * times[n] / n_vol}
                                                                 if n in times else {})} for n, v in per.items()},
            "iterations": {n: {str(t): _summary(v) for t, v in s.items()} for n, s in sweep.items()}}
    if cs_lambda is not None:
        res["cs"] = {"library": "sigpy", "lambda": float(cs_lambda), "wavelet": "db4", "max_iter": CS_MAX_ITER}
    return res


def phantom_test_set(out_dir, n_volumes: int, seed: int, size: int = 64, slices: int = 16, coils: int = 0) -> Path:
    """Write (once) and return a folder of phantom test volumes in the fastMRI layout."""
    folder = Path(out_dir) / f"phantoms_seed{seed}_{size}px_{slices}sl_{coils}c_{n_volumes}v"
    if len(list(folder.glob("*.h5"))) != n_volumes:
        write_phantom_volumes(folder, n_volumes, slices=slices, size=size, coils=coils, seed=seed)
    return folder


# ---- report ------------------------------------------------------------------------------------

METRICS = (("nmse", "NMSE", "{:.4f}"), ("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"))


def report_table(result: dict) -> str:
    """A markdown table: one row per acceleration and method, mean ± sd over volumes."""
    lines = ["| acceleration | method | " + " | ".join(h for _, h, _ in METRICS) + " | ms/slice |",
             "| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- |"]
    for acc, r in result["accelerations"].items():
        for name, m in r["methods"].items():
            cells = [f"{fmt.format(m[k])} ± {fmt.format(m[k + '_sd'])}" for k, _, fmt in METRICS]
            ms = f"{m['ms_per_slice']:.1f}" if "ms_per_slice" in m else "–"
            lines.append(f"| {acc} | {name} | " + " | ".join(cells) + f" | {ms} |")
    return "\n".join(lines) + "\n"


def plot_iterations(result: dict, path) -> Path | None:
    """SSIM and PSNR against iterations per module, one line per PC-RNN and acceleration, with the
    zero-filled level dashed."""
    rows = [(acc, n, s) for acc, r in result["accelerations"].items() for n, s in r["iterations"].items()]
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, label in ((axes[0], "ssim", "SSIM"), (axes[1], "psnr", "PSNR (dB)")):
        for i, (acc, name, sweep) in enumerate(rows):
            ts = sorted(sweep, key=int)
            ax.errorbar([int(t) for t in ts], [sweep[t][key] for t in ts], yerr=[sweep[t][key + "_sd"] for t in ts],
                        marker="o", ms=3, capsize=2, color=f"C{i}", label=f"{name} {acc}")
            zf = result["accelerations"][acc]["methods"]["zero_filled"][key]
            ax.axhline(zf, color=f"C{i}", ls="--", lw=0.8)
        ax.set_xlabel("iterations per module")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("PC-RNN quality vs iterations (dashed: zero-filled)", fontsize=9)
    return save_figure(fig, path, dpi=150)


@torch.no_grad()
def plot_reconstructions(models: dict, data, accelerations, path, *, seed: int = 0, mask_kind: str = "random",
                         cs_lambda: float | None = None, device: str = "cpu", mask_per_volume: bool = False) -> Path:
    """The middle slice of the first volume at each acceleration: target, zero-filled, CS and every
    model (top), and the absolute error x 5 (bottom row of each pair)."""
    plt = pyplot()
    cols, rows = None, []
    for acc in accelerations:
        _, vol = next(_volumes(_volume_set(data, acc, seed, mask_kind, mask_per_volume)))
        s = len(vol["target"]) // 2
        one = {k: v[s:s + 1] for k, v in vol.items()}
        gt = one["target"][0]
        recs = {"zero-filled": rss(zero_filled(one["kspace_masked"]), dim=1)[0]}
        if cs_lambda is not None:
            recs["CS (L1 wavelet)"] = cs_reconstruct(one["kspace_masked"][0], one["mask"][0], cs_lambda)
        for name, model in models.items():
            recs[name] = _predict(model, one, device, 1)[0]
        recs = {"target": _match(recs["zero-filled"], gt)[1], **{k: _match(v, gt)[0] for k, v in recs.items()}}
        cols = list(recs)
        rows.append((acc, recs))
    fig, axes = plt.subplots(2 * len(rows), len(cols), figsize=(1.9 * len(cols), 3.9 * len(rows)), squeeze=False)
    for r, (acc, recs) in enumerate(rows):
        gt = recs["target"]
        vmax = float(gt.max())
        for c, name in enumerate(cols):
            img = recs[name]
            ax, ex = axes[2 * r, c], axes[2 * r + 1, c]
            ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=vmax)
            title = name if name == "target" else f"{name}\nSSIM {ssim(gt, img, maxval=vmax):.3f}"
            ax.set_title(f"{acc}: {title}" if c == 0 else title, fontsize=7)
            ex.imshow(5 * (img - gt).abs().numpy(), cmap="magma", vmin=0, vmax=vmax)
            for a in (ax, ex):
                a.axis("off")
    return save_figure(fig, path, dpi=150)


@torch.no_grad()
def plot_pcrnn_steps(model, data, acceleration: str, path, *, seed: int = 0, mask_kind: str = "random",
                     device: str = "cpu", mask_per_volume: bool = False) -> Path:
    """One slice after every iteration of every PC-RNN module (rows: scale 1/4, 1/2, 1; last
    column: the final combined output), with the SSIM of each image."""
    plt = pyplot()
    _, vol = next(_volumes(_volume_set(data, acceleration, seed, mask_kind, mask_per_volume)))
    s = len(vol["target"]) // 2
    gt = vol["target"][s]
    out = model.eval()(vol["kspace_masked"][s:s + 1].to(device), vol["mask"][s:s + 1].to(device),
                       return_intermediates=True)
    mags = [m[:, 0].float().cpu() for m in out.intermediate_magnitudes()]
    final, gt = _match(out.magnitude()[0].float().cpu(), gt)
    T = max(len(m) for m in mags)
    fig, axes = plt.subplots(len(mags), T + 1, figsize=(1.6 * (T + 1), 1.75 * len(mags)), squeeze=False)
    vmax = float(gt.max())
    for r, (scale, m) in enumerate(zip(out.scales, mags)):
        for t in range(T + 1):
            ax = axes[r, t]
            ax.axis("off")
            img = _match(m[t], gt)[0] if t < len(m) else (final if r == len(mags) - 1 else None)
            if img is None:
                continue
            ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=vmax)
            what = f"it {t + 1}" if t < len(m) else "final"
            ax.set_title(f"1/{scale}: {what}\nSSIM {ssim(gt, img, maxval=vmax):.3f}", fontsize=6)
    fig.suptitle(f"PC-RNN iterations at {acceleration} (rows: module scale)", fontsize=8)
    return save_figure(fig, path, dpi=150)


def write_mri_report(result: dict, models: dict, out_dir, *, device: str = "cpu") -> list[Path]:
    """``eval.json``, ``report.md`` and the figures (quality vs iterations, reconstructions, every
    PC-RNN's iterations per scale) in ``out_dir``."""
    import json

    from ..fileio import atomic_write_text, json_ready
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "eval.json", out / "report.md"]
    atomic_write_text(paths[0], json.dumps(json_ready(result), indent=1))     # inf PSNR -> null
    atomic_write_text(paths[1], "# MRI reconstruction\n\n" + report_table(result))
    if pyplot(optional=True) is None:
        print("mri: matplotlib is not installed, so no figures (pip install 'convrnn[plots]')")
        return paths
    accs = list(result["accelerations"])
    data, seed, kind = result["data"], result["seed"], result["mask_kind"]
    per_volume = result.get("mask_per_volume", False)
    p = plot_iterations(result, out / "quality_vs_iterations.png")
    if p:
        paths.append(p)
    cs = result.get("cs", {}).get("lambda")
    paths.append(plot_reconstructions(models, data, accs, out / "reconstructions.png", seed=seed, mask_kind=kind,
                                      cs_lambda=cs, device=device, mask_per_volume=per_volume))
    for name, model in models.items():
        if isinstance(_core(model), PCRNN):
            for acc in accs:
                paths.append(plot_pcrnn_steps(model, data, acc, out / f"{name}_iterations_{acc}.png", seed=seed,
                                              mask_kind=kind, device=device, mask_per_volume=per_volume))
    return paths
