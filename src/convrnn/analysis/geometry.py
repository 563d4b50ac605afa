"""Representational geometry of multi-area recurrent networks, per area and per time step.

The network is any module with ``model.areas[name].output`` (a hookable module whose output is the
area's activity a_k(t), e.g. :class:`~convrnn.models.multiarea.MultiAreaNetwork`) that unrolls with
``model(x, steps=T, return_steps=True)``. Greco et al. (2025) report that top-down feedback confines
the "post-integration" area to a low-dimensional manifold and stabilises its dynamics, while dropout
alone makes them more chaotic; these functions measure exactly those quantities:

* :func:`collect_area_outputs` — a_k(t) for every image, area and step (forward hooks);
* :func:`participation_ratio` — linear dimensionality of a point cloud;
* :func:`pca_trajectories` / :func:`class_mean_trajectories` — low-dimensional trajectories;
* :func:`linear_probe_accuracy` — linear decodability of the class (cross-validated);
* :func:`rdm` / :func:`rsa` — representational dissimilarity matrices and their rank correlation
  (Kriegeskorte et al. 2008);
* :func:`trajectory_divergence` — growth of a small input perturbation through the steps and a
  finite-time Lyapunov exponent;
* :func:`geometry_report` / :func:`write_geometry_report` — all of it as JSON (and a PNG).

Undefined values (e.g. the RSA of an area whose activity is still identical for every image at step
1, before the input has reached it) are ``nan`` in the functions and ``null`` in the JSON report.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import check_int, check_positive_int, check_steps, require, unknown_name
from ..fileio import atomic_write_text, json_ready
from .plots import pyplot, save_figure
from .robustness import _EvalMode, _check_xy, _device

__all__ = ["collect_area_outputs", "participation_ratio", "pca_trajectories", "class_mean_trajectories",
           "linear_probe_accuracy", "rdm", "rsa", "trajectory_divergence", "lyapunov_slope", "geometry_report",
           "write_geometry_report", "area_names", "json_ready", "RDM_METRICS"]

RDM_METRICS = ("correlation", "euclidean")


# --------------------------------------------------------------------------- helpers

def area_names(model, areas=None) -> list[str]:
    """The requested area names (default: all, in network order), validated against ``model.areas``."""
    if not hasattr(model, "areas"):
        raise ValueError(f"expected a multi-area network exposing model.areas[name].output (e.g. MultiAreaNetwork), "
                         f"got {type(model).__name__}")
    valid = list(model.areas)
    if areas is None:
        return valid
    areas = [areas] if isinstance(areas, str) else list(areas)
    if not areas:
        raise ValueError(f"areas: expected at least one area name; valid areas: {', '.join(valid)}")
    for a in areas:
        if a not in valid:
            raise unknown_name("area", a, valid)
    return areas


def _matrix(features, what: str = "features") -> np.ndarray:
    """``features`` (N, D, ...) as a float64 (N, D) numpy array (trailing dims flattened)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"{what}: expected an array of shape (N, D) (more dims are flattened), got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{what}: expected at least 2 samples and 1 feature (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or inf values")
    return x


# --------------------------------------------------------------------------- activity

@torch.no_grad()
def collect_area_outputs(model, x: torch.Tensor, steps: int, areas=None, batch_size: int = 256, *,
                         pool: int | None = None, forward_kwargs: dict | None = None,
                         dtype: torch.dtype | None = torch.float32) -> dict[str, torch.Tensor]:
    """Every requested area's output a_k(t) for t = 1..steps: ``{name: float32 CPU (steps, N, C, H, W)}``.

    Runs ``model(x, steps=steps, return_steps=True)`` in eval mode (the previous mode is restored;
    dropout stays on only with the model's ``dropout_at_test``) without gradients, ``batch_size``
    images at a time, with forward hooks on ``model.areas[name].output``. ``pool``: average-pool
    every map to ``pool x pool`` before storing (saves memory for big areas). ``dtype=None`` keeps the
    model's output dtype instead of float32.
    """
    names = area_names(model, areas)
    steps = check_steps(steps)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x: expected images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = _device(model)
    current: dict[str, list] = {n: [] for n in names}
    chunks: dict[str, list] = {n: [] for n in names}

    def hook(name):
        def fn(module, inputs, output):
            o = output.detach()
            if pool:
                o = F.adaptive_avg_pool2d(o, pool)
            current[name].append((o if dtype is None else o.to(dtype)).cpu())
        return fn

    handles = [model.areas[n].output.register_forward_hook(hook(n)) for n in names]
    try:
        with _EvalMode(model):
            for i in range(0, x.shape[0], batch_size):
                model(x[i:i + batch_size].to(dev), steps=steps, return_steps=True, **(forward_kwargs or {}))
                for n in names:
                    if len(current[n]) != steps:
                        raise RuntimeError(f"area {n!r}: its output ran {len(current[n])} times in {steps} steps")
                    chunks[n].append(torch.stack(current[n]))
                    current[n] = []
    finally:
        for h in handles:
            h.remove()
    return {n: torch.cat(chunks[n], 1) for n in names}


# --------------------------------------------------------------------------- dimensionality

def participation_ratio(features) -> float:
    """Participation ratio of the point cloud ``features`` (N, D) (more dims are flattened to D)::

        PR = (Σ_i λ_i)² / Σ_i λ_i²,      λ_i: eigenvalues of the covariance of the rows

    (Gao et al. 2017, "A theory of multineuronal dimensionality", bioRxiv 214262; Litwin-Kumar et
    al. 2017, Neuron 93(5)). PR is 1 for data on a line and D for isotropic data; it is invariant to
    rotations and to the overall scale. With X the row-centred data and G the smaller of X Xᵀ (N x N)
    and Xᵀ X (D x D), which share their non-zero eigenvalues, Σλ = tr G and Σλ² = ||G||_F², so no
    eigendecomposition is needed and D >> N costs O(N² D). Data without variance give 0.
    """
    x = _matrix(features)
    x = x - x.mean(0)
    g = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    fro2 = float((g * g).sum())
    return float(np.trace(g) ** 2 / fro2) if fro2 > 0 else 0.0


def pca_trajectories(feats_by_step, n_components: int = 3, *, exact_max: int = 512, seed: int = 0) -> dict:
    """PCA fitted on all steps pooled, then every step projected on the same axes.

    ``feats_by_step``: (T, N, D...) (e.g. one area of :func:`collect_area_outputs`). With the T*N
    rows centred by their pooled mean μ and the top-k right singular vectors V_k of that matrix,
    ``projections[t] = (F_t - μ) V_k`` (T, N, k) and ``explained_variance_ratio[i] = s_i² / Σ s²``.
    Exact (eigendecomposition of the smaller Gram/covariance matrix) when min(T*N, D) <= ``exact_max``,
    otherwise randomized (``torch.svd_lowrank``, seeded). Signs: each component's largest loading is
    positive. Returns numpy arrays ``projections`` (T, N, k), ``components`` (k, D), ``mean`` (D,)
    and the list ``explained_variance_ratio``.
    """
    f = feats_by_step.detach().cpu().double().numpy() if isinstance(feats_by_step, torch.Tensor) \
        else np.asarray(feats_by_step, dtype=np.float64)
    if f.ndim < 3:
        raise ValueError(f"feats_by_step: expected (T, N, D...) features per step, got shape {f.shape}")
    t, n = f.shape[:2]
    x = _matrix(f.reshape(t * n, -1), "feats_by_step")
    mean = x.mean(0)
    x = x - mean
    m, d = x.shape
    check_positive_int("n_components", n_components)
    k = min(n_components, m, d)
    total = float((x * x).sum())
    if min(m, d) <= exact_max:
        if d <= m:
            lam, vec = np.linalg.eigh(x.T @ x)
            comps = vec[:, ::-1][:, :k].T
        else:
            lam, u = np.linalg.eigh(x @ x.T)
            lam, u = lam[::-1][:k], u[:, ::-1][:, :k]
            inv = np.where(lam > 1e-12 * max(lam[0], 1e-300), 1.0 / np.sqrt(np.maximum(lam, 1e-300)), 0.0)
            comps = (x.T @ u * inv).T             # v_i = Xᵀ u_i / s_i (0 past the rank)
        var = ((x @ comps.T) ** 2).sum(0)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, s, v = torch.svd_lowrank(torch.from_numpy(x), q=min(k + 10, m, d), niter=6)
        comps, var = v[:, :k].T.numpy(), (s[:k] ** 2).numpy()
    comps = comps * np.where(comps[np.arange(k), np.abs(comps).argmax(1)] < 0, -1.0, 1.0)[:, None]
    proj = (x @ comps.T).reshape(t, n, k)
    evr = (var / total).tolist() if total > 0 else [0.0] * k
    return {"projections": proj, "components": comps, "mean": mean, "explained_variance_ratio": evr}


def class_mean_trajectories(proj, labels) -> np.ndarray:
    """Mean over the images of each class of ``proj`` (T, N, k): (T, n_classes, k), classes in the
    order of ``np.unique(labels)``."""
    p = np.asarray(proj, dtype=np.float64)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if p.ndim != 3 or y.shape != (p.shape[1],):
        raise ValueError(f"expected proj (T, N, k) and labels (N,), got shapes {p.shape} and {y.shape}")
    return np.stack([p[:, y == c].mean(1) for c in np.unique(y)], 1)


# --------------------------------------------------------------------------- decoding

def linear_probe_accuracy(features, labels, folds: int = 5, seed: int = 0, *, C: float = 1.0,
                          max_iter: int = 500) -> float:
    """Cross-validated accuracy of a linear read-out of the class from ``features`` (N, D).

    Pipeline: per-feature standardisation (fitted on the training folds) and L2-regularised
    multinomial logistic regression (strength ``1/C``), scikit-learn; stratified ``folds``-fold
    split shuffled by ``seed``. Returns the pooled held-out accuracy (correct / N). Every class needs
    at least ``folds`` samples. Convergence warnings (``max_iter``) are silenced.
    """
    require("sklearn", "classification")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _matrix(features)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels: expected {x.shape[0]} labels (one per row of features), got shape {y.shape}")
    check_int("folds", folds, 2)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"labels: expected at least 2 classes, got {classes.tolist()}")
    if counts.min() < folds:
        raise ValueError(f"linear probe: every class needs at least folds={folds} samples; class "
                         f"{classes[counts.argmin()]!r} has {counts.min()} (use more images or fewer folds)")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pred = cross_val_predict(pipe, x, y, cv=cv)
    return float((pred == y).mean())


# --------------------------------------------------------------------------- RSA

def rdm(features, metric: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix (N, N) of the rows of ``features`` (N, D).

    ``correlation``: ``1 - r(x_i, x_j)`` with Pearson's r over the D features (a row without
    variance has r = 0 with every other row); ``euclidean``: ``||x_i - x_j||_2``. Zero diagonal.
    Identical rows get exactly 0 (the matrix is computed on the distinct rows, so rounding in the
    matrix products cannot rank them). (Kriegeskorte, Mur & Bandettini 2008, "Representational
    similarity analysis", Front. Syst. Neurosci. 2:4.)
    """
    if metric not in RDM_METRICS:
        raise unknown_name("RDM metric", metric, RDM_METRICS)
    x, inv = np.unique(_matrix(features), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if metric == "correlation":
        z = x - x.mean(1, keepdims=True)
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        z = z / np.where(norm > 0, norm, 1.0)
        d = np.clip(1.0 - z @ z.T, 0.0, 2.0)
    else:
        sq = (x * x).sum(1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
    np.fill_diagonal(d, 0.0)
    return d[inv][:, inv]


def rsa(rdm_a, rdm_b) -> float:
    """Spearman rank correlation of the upper triangles (k = 1) of two RDMs of the same N x N shape
    (average ranks for ties, ``nan`` when either triangle is constant)."""
    a, b = np.asarray(rdm_a, dtype=np.float64), np.asarray(rdm_b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape or a.shape[0] < 3:
        raise ValueError(f"rsa: expected two square RDMs of the same shape (N, N) with N >= 3, "
                         f"got {a.shape} and {b.shape}")
    iu = np.triu_indices(a.shape[0], k=1)
    a, b = a[iu], b[iu]
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    # convrnn.evaluate.spearman gives the same value but ranks ties in O(n x distinct values):
    # too slow for the N(N-1)/2 entries of an RDM, so scipy's O(n log n) ranking is used here.
    stats = require("scipy.stats", "classification")
    return float(np.corrcoef(stats.rankdata(a), stats.rankdata(b))[0, 1])


# --------------------------------------------------------------------------- dynamics

def lyapunov_slope(distance) -> float:
    """Least-squares slope of ``log d(t)`` against t over the steps with ``d(t) > 0`` (``nan`` when
    fewer than two such steps)."""
    d = np.asarray(distance, dtype=np.float64)
    t = np.arange(1, len(d) + 1, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(t[ok], np.log(d[ok]), 1)[0])


def trajectory_divergence(model, x: torch.Tensor, steps: int, eps: float = 1e-3, areas=None, seed: int = 0,
                          batch_size: int = 256, *, forward_kwargs: dict | None = None) -> dict:
    """How a small input perturbation grows or shrinks through the unrolled steps.

    Each image x_i gets its own random direction of L2 norm ``eps`` (``torch.Generator`` seeded by
    ``seed``; no clipping to the image range)::

        δ_i = eps · u_i / ||u_i||,   u_i ~ N(0, I)
        d_k(t) = (1/N) Σ_i ||a_k(t; x_i + δ_i) - a_k(t; x_i)||_2 / ||δ_i||      (t = 1..steps)
        λ_k = slope of the least-squares line through (t, log d_k(t)) over the steps with d_k(t) > 0

    d_k(t) is the gain of area k at step t (the input is shown at every step the model shows it, so
    this is the sensitivity of the driven trajectory, not of the initial state alone); λ_k is a
    finite-time Lyapunov exponent per step: > 0 perturbations grow (chaotic-like), < 0 they
    contract (stable). Both runs are in eval mode; with the model's ``dropout_at_test`` they use the
    same dropout masks (the RNG is reseeded identically before each), so only the input differs.
    It always runs in float32, also inside a bf16 autocast region.
    Returns ``{"eps", "steps", "areas": {name: {"distance": [T floats], "lyapunov": float}}}``.
    """
    names = area_names(model, areas)
    steps = check_steps(steps)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x: expected images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if not x.is_floating_point():      # a small perturbation of integer images would round to zero
        raise TypeError(f"x: expected floating-point images (e.g. uint8 / 255), got dtype {x.dtype}")
    eps = float(eps)
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps: expected a finite perturbation norm > 0, got {eps}")
    u = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    delta = (eps * u / u.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, 1, 1, 1)).to(x.dtype)
    dev = _device(model)
    rng_devices = [dev] if dev.type == "cuda" else []
    total = {n: torch.zeros(steps, dtype=torch.float64) for n in names}

    def run(xb):
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(int(seed))
            return collect_area_outputs(model, xb, steps, names, len(xb), forward_kwargs=forward_kwargs, dtype=None)

    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        with torch.autocast(dev.type, enabled=False):    # an eps-sized difference needs full precision
            a, b = run(xb), run(xb + delta[i:i + batch_size])
        for n in names:
            total[n] += (b[n] - a[n]).flatten(2).double().norm(dim=2).sum(1)
    out = {}
    for n in names:
        dist = (total[n] / (x.shape[0] * eps)).tolist()
        out[n] = {"distance": dist, "lyapunov": lyapunov_slope(dist)}
    return {"eps": eps, "steps": steps, "areas": out}


# --------------------------------------------------------------------------- report

def _post_integration_area(model, names):
    """The target of the first feedback edge (Greco's "post-integration" area), else the last area."""
    fb = getattr(getattr(model, "config", None), "feedback", None) or []
    targets = [e["target"] for e in fb if isinstance(e, dict) and e.get("target") in names]
    return targets[0] if targets else names[-1]


def geometry_report(model, x: torch.Tensor, y, steps: int, areas=None, *, probe_steps=None, folds: int = 5,
                    eps: float = 1e-3, seed: int = 0, batch_size: int = 256, n_components: int = 3,
                    rdm_metric: str = "correlation", pool: int | None = None, divergence: bool = True) -> dict:
    """Geometry per area and step (t = 1..steps), JSON-ready (``nan`` as ``null``).

    Per area: ``participation_ratio`` [T]; ``probe_accuracy`` [T] (:func:`linear_probe_accuracy`
    with ``folds``, computed at ``probe_steps`` only — 1-based steps, default all — and ``null``
    elsewhere); ``rsa_consecutive`` [T-1] (RSA of the RDMs of steps t and t+1); ``rsa_final`` [T]
    (RSA of step t against the last step); ``pca`` (:func:`pca_trajectories` on the pooled steps:
    ``explained_variance_ratio`` and the ``class_means`` trajectories [T][classes][k]); and
    ``shape`` (C, H, W). Plus ``divergence`` (:func:`trajectory_divergence` with ``eps``; skipped
    with ``divergence=False``) and ``pca_area`` (the first feedback target, else the last area).
    """
    names = area_names(model, areas)
    steps = check_steps(steps)
    x, y = _check_xy(x, y)
    y = y.cpu().numpy()
    if probe_steps is None:
        probe_steps = list(range(1, steps + 1))
    probe_steps = sorted({int(s) for s in probe_steps})
    bad = [s for s in probe_steps if not 1 <= s <= steps]
    if bad:
        raise ValueError(f"probe_steps: expected steps in 1..{steps}, got {bad}")
    acts = collect_area_outputs(model, x, steps, names, batch_size, pool=pool)
    report = {"analysis": "geometry", "n": int(x.shape[0]), "steps": steps, "seed": int(seed), "folds": folds,
              "probe_steps": probe_steps, "rdm_metric": rdm_metric, "classes": np.unique(y).tolist(),
              "pca_area": _post_integration_area(model, names), "areas": {}}
    for n in names:
        a = acts.pop(n)
        feats = [a[t].reshape(a.shape[1], -1).double().numpy() for t in range(steps)]
        rdms = [rdm(f, rdm_metric) for f in feats]
        pca = pca_trajectories(a, n_components, seed=seed)
        report["areas"][n] = {
            "shape": list(a.shape[2:]),
            "participation_ratio": [participation_ratio(f) for f in feats],
            "probe_accuracy": [linear_probe_accuracy(feats[t - 1], y, folds, seed) if t in probe_steps else None
                               for t in range(1, steps + 1)],
            "rsa_consecutive": [rsa(rdms[t], rdms[t + 1]) for t in range(steps - 1)],
            "rsa_final": [rsa(r, rdms[-1]) for r in rdms],
            "pca": {"explained_variance_ratio": pca["explained_variance_ratio"],
                    "class_means": class_mean_trajectories(pca["projections"], y)},
        }
    if divergence:
        report["divergence"] = trajectory_divergence(model, x, steps, eps, names, seed, batch_size)
    return json_ready(report)


def write_geometry_report(report: dict, out_dir) -> list[Path]:
    """Write ``geometry.json`` (atomic) and, when matplotlib is installed, ``geometry.png``: participation
    ratio vs step, divergence vs step (log scale) and the class-mean PCA trajectories of
    ``report["pca_area"]``. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "geometry.json"]
    atomic_write_text(paths[0], json.dumps(report, indent=1) + "\n")
    plt = pyplot(optional=True)
    if plt is None:       # plots are optional
        return paths

    areas = report["areas"]
    steps = range(1, report["steps"] + 1)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for n, r in areas.items():
        axes[0].plot(steps, [np.nan if v is None else v for v in r["participation_ratio"]], "o-", label=n)
    axes[0].set(xlabel="step", ylabel="participation ratio", title="Dimensionality per area")
    div = report.get("divergence")
    if div:
        for n, r in div["areas"].items():
            d = np.array([np.nan if v is None or v <= 0 else v for v in r["distance"]], dtype=float)
            lam = r["lyapunov"]
            axes[1].plot(steps, d, "o-", label=f"{n} (λ={lam:.2f})" if lam is not None else n)
        if any(v for r in div["areas"].values() for v in r["distance"]):
            axes[1].set_yscale("log")
        axes[1].set_title(f"Perturbation gain (eps={div['eps']:g})")
    axes[1].set(xlabel="step", ylabel="||Δa(t)|| / ||δ||")
    pa = report.get("pca_area")
    if pa in areas:
        cm = np.array(areas[pa]["pca"]["class_means"], dtype=float)      # (T, classes, k)
        for c in range(cm.shape[1]):
            line, = axes[2].plot(cm[:, c, 0], cm[:, c, 1] if cm.shape[2] > 1 else np.zeros(len(cm)), "-",
                                 label=str(report["classes"][c]))
            axes[2].plot(cm[-1, c, 0], cm[-1, c, 1] if cm.shape[2] > 1 else 0, "o", color=line.get_color())
        axes[2].set(xlabel="PC 1", ylabel="PC 2", title=f"{pa}: class-mean trajectories (dot: last step)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "geometry.png", dpi=110))
    return paths
