"""Metrics (fastMRI evaluation conventions) and training losses on magnitude images.

Evaluation is volume-wise on magnitude images (fastMRI, Zbontar et al. 2018)::

  NMSE = ||gt - pred||^2 / ||gt||^2                   over the whole volume
  PSNR = 10 log10( maxval^2 / mean((gt - pred)^2) )   maxval = gt.max() of the volume
  SSIM = mean over slices of the mean SSIM map of each slice, with data range L = maxval:
         7x7 uniform window, statistics over every window that fits inside the slice ("valid"),
         unbiased (co)variances (factor N / (N - 1), N = 49), C1 = (0.01 L)^2, C2 = (0.03 L)^2,
         SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

(the definition of scikit-image's structural_similarity with its defaults, whose border crop of
(win - 1) / 2 pixels is the same as keeping only the valid windows).  :func:`ssim_loss` is the
differentiable ``1 - SSIM`` of the same definition, :func:`nmse_ssim_loss` the training loss.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["center_crop", "nmse", "psnr", "ssim", "ssim_loss", "nmse_ssim_loss"]

SSIM_WIN, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03


def _volume_pair(gt, pred, what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(gt, torch.Tensor):
        gt = gt.detach().cpu().numpy()
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    gt, pred = np.asarray(gt), np.asarray(pred)
    if np.iscomplexobj(gt) or np.iscomplexobj(pred):
        raise TypeError(f"{what}: expected real magnitude images, got complex input (take abs or rss first)")
    if gt.shape != pred.shape:
        raise ValueError(f"{what}: gt {gt.shape} and pred {pred.shape} must have the same shape")
    return gt.astype(np.float64), pred.astype(np.float64)


def center_crop(x, shape):
    """Centre crop of the last two dims to ``shape = (h, w)`` (numpy array or torch tensor).

    The crop starts at ``((H - h) // 2, (W - w) // 2)``; a crop larger than the image raises."""
    h, w = (int(shape), int(shape)) if isinstance(shape, (int, np.integer)) else (int(shape[0]), int(shape[1]))
    H, W = x.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"center_crop: crop {(h, w)} must be positive and fit inside the image {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def nmse(gt, pred) -> float:
    """Normalised MSE ``||gt - pred||^2 / ||gt||^2`` over the whole volume (numpy or torch)."""
    gt, pred = _volume_pair(gt, pred, "nmse")
    return float(np.sum((gt - pred) ** 2) / np.sum(gt ** 2))


def psnr(gt, pred, maxval=None) -> float:
    """PSNR in dB, ``10 log10(maxval^2 / MSE)`` with ``maxval = gt.max()`` of the volume by default;
    ``inf`` when ``pred == gt``."""
    gt, pred = _volume_pair(gt, pred, "psnr")
    maxval = float(gt.max()) if maxval is None else float(maxval)
    mse = float(np.mean((gt - pred) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(maxval ** 2 / mse))


def _box_mean_np(x: np.ndarray, win: int) -> np.ndarray:
    """Mean over every ``win x win`` window that fits ("valid"), last two dims, via an integral image."""
    c = np.pad(np.cumsum(np.cumsum(x, axis=-2), axis=-1), [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    s = c[..., win:, win:] - c[..., :-win, win:] - c[..., win:, :-win] + c[..., :-win, :-win]
    return s / (win * win)


def ssim(gt, pred, maxval=None) -> float:
    """Mean SSIM of a ``(slices, H, W)`` (or one ``(H, W)``) magnitude volume, fastMRI style:
    per-slice SSIM with ``data_range = maxval`` (default ``gt.max()`` of the whole volume), 7x7
    uniform window, K1 0.01, K2 0.03, averaged over slices."""
    gt, pred = _volume_pair(gt, pred, "ssim")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    if gt.ndim != 3:
        raise ValueError(f"ssim: expected (slices, H, W) or (H, W) volumes, got shape {gt.shape}")
    if min(gt.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"ssim: images must be at least {SSIM_WIN}x{SSIM_WIN}, got {gt.shape[-2:]}")
    L = float(gt.max()) if maxval is None else float(maxval)
    C1, C2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    n = SSIM_WIN * SSIM_WIN
    cov = n / (n - 1)
    ux, uy = _box_mean_np(gt, SSIM_WIN), _box_mean_np(pred, SSIM_WIN)
    vx = cov * (_box_mean_np(gt * gt, SSIM_WIN) - ux * ux)
    vy = cov * (_box_mean_np(pred * pred, SSIM_WIN) - uy * uy)
    vxy = cov * (_box_mean_np(gt * pred, SSIM_WIN) - ux * uy)
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux ** 2 + uy ** 2 + C1) * (vx + vy + C2))
    return float(S.mean(axis=(-2, -1)).mean())


def _as_bchw(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{what}: expected a real floating torch.Tensor (B, H, W) or (B, 1, H, W)")
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] == 1:
        return x
    raise ValueError(f"{what}: expected shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range=None) -> torch.Tensor:
    """Differentiable ``1 - SSIM`` (same definition as :func:`ssim`), averaged over the batch.

    ``pred``/``target``: magnitude images ``(B, H, W)`` or ``(B, 1, H, W)``; ``data_range``: a
    number or a ``(B,)`` tensor, default the max of each target image (detached)."""
    x, y = _as_bchw(pred, "ssim_loss pred"), _as_bchw(target, "ssim_loss target")
    if x.shape != y.shape:
        raise ValueError(f"ssim_loss: pred {tuple(x.shape)} and target {tuple(y.shape)} must have the same shape")
    if min(x.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"ssim_loss: images must be at least {SSIM_WIN}x{SSIM_WIN}, got {tuple(x.shape[-2:])}")
    B = x.shape[0]
    if data_range is None:
        L = y.detach().amax(dim=(1, 2, 3))
    else:
        L = torch.as_tensor(data_range, dtype=x.dtype, device=x.device).reshape(-1).expand(B)
    L = L.to(x.dtype).reshape(B, 1, 1, 1)
    C1, C2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    n = SSIM_WIN * SSIM_WIN
    cov = n / (n - 1)

    def mean(z):
        return torch.nn.functional.avg_pool2d(z, SSIM_WIN, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2))
    return 1 - S.mean()


def nmse_ssim_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, data_range=None) -> torch.Tensor:
    """Training loss ``NMSE + alpha * (1 - SSIM)`` on magnitude images ``(B, [1,] H, W)`` (PC-RNN
    trains on a combination of NMSE and SSIM; the weighting form is ours).  NMSE is per image,
    ``||pred - target||^2 / ||target||^2``, averaged over the batch."""
    x, y = _as_bchw(pred, "nmse_ssim_loss pred"), _as_bchw(target, "nmse_ssim_loss target")
    if x.shape != y.shape:
        raise ValueError(f"nmse_ssim_loss: pred {tuple(x.shape)} and target {tuple(y.shape)} must have the same shape")
    err = (x - y).square().sum(dim=(1, 2, 3)) / y.square().sum(dim=(1, 2, 3)).clamp_min(1e-20)
    loss = err.mean()
    if alpha:
        loss = loss + alpha * ssim_loss(x, y, data_range)
    return loss
