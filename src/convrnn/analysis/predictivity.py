"""Neural predictivity: how well each area and time step of a model linearly predicts recorded neurons.

The standard recipe of Yamins et al. (2014) and Nayebi et al. (2018, "Task-driven convolutional
recurrent models of the visual system", NeurIPS; model time steps mapped to 10 ms bins of V4/IT
responses), also Brain-Score's (Schrimpf et al. 2018):

1. features X (stimuli x D) of one area at one model step; responses y (stimuli) of one neuron in
   one time bin, averaged over the R repetitions of each stimulus;
2. cross-validated linear map: K folds over *stimuli*; on each training fold the features are
   standardised and either ridge regression (penalty chosen per target by efficient leave-one-out
   over ``alphas``, scikit-learn ``RidgeCV``) or PLS regression (``n_components``) is fitted, and
   the held-out stimuli are predicted; the K held-out predictions ŷ are pooled;
3. score per neuron and bin on the held-out predictions: explained variance
   ``EV = 1 - Σ_s (y_s - ŷ_s)² / Σ_s (y_s - ȳ)²`` (default), or ``r² = corr(y, ŷ)²``;
4. noise ceiling ρ (:func:`noise_ceiling`): the Spearman–Brown-corrected split-half reliability of
   the R-repetition mean — the largest EV (or r²) any model can reach in expectation, because the
   trial-averaged response still holds noise of variance σ²/R: ρ = σ_signal² / (σ_signal² + σ²/R);
5. corrected score per time bin: ``median over neurons of EV / ρ`` (neurons with ρ <= ``min_ceiling``
   left out as unreliable). A model whose features hold the generating signal scores ≈ 1.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import check_int, check_positive_int, require, unknown_name
from ..fileio import atomic_write_text, json_ready
from .geometry import area_names, collect_area_outputs
from .plots import pyplot, save_figure

__all__ = ["neural_predictivity", "noise_ceiling", "features_by_area_step", "predictivity_report",
           "write_predictivity_report", "METHODS", "SCORES", "DEFAULT_ALPHAS"]

METHODS = ("ridge", "pls")
SCORES = ("ev", "r2")
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 6, 10))
_RESPONSE_SHAPES = "(stimuli, neurons, time bins) or (repetitions, stimuli, neurons, time bins)"


def _responses(responses, what: str = "responses") -> np.ndarray:
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim not in (3, 4):
        raise ValueError(f"{what}: expected an array of shape {_RESPONSE_SHAPES}, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"{what}: contains NaN or inf values")
    return r


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` that gives nan for an all-nan slice without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along axis 0 (nan where either side is constant)."""
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def noise_ceiling(responses_reps, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Reliability of the repetition-averaged response per neuron and bin: (neurons, bins).

    ``responses_reps``: (R, stimuli, neurons, bins), R >= 2. For each of ``n_splits`` random splits
    of the repetitions into two disjoint halves of h = R // 2 (one repetition left out when R is
    odd), r = Pearson correlation over stimuli of the two half-means; with r̄ the mean over splits,
    the Spearman–Brown prophecy formula extends it to all R repetitions (k = R / h)::

        ρ = k r̄ / (1 + (k - 1) r̄)

    For responses = signal + independent noise of variance σ², ρ = σ_s² / (σ_s² + σ²/R) in
    expectation (Spearman 1910; Brown 1910).
    """
    r = _responses(responses_reps, "responses_reps")
    if r.ndim != 4 or r.shape[0] < 2:
        raise ValueError("responses_reps: expected (repetitions >= 2, stimuli, neurons, time bins), "
                         f"got shape {r.shape}")
    check_positive_int("n_splits", n_splits)
    reps, h = r.shape[0], r.shape[0] // 2
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n_splits):
        p = rng.permutation(reps)
        rs.append(_corr(r[p[:h]].mean(0), r[p[h:2 * h]].mean(0)))
    rbar, k = np.mean(rs, 0), reps / h
    with np.errstate(invalid="ignore", divide="ignore"):
        return k * rbar / (1 + (k - 1) * rbar)


def _features(features) -> tuple[np.ndarray, bool]:
    """(T, S, D) float64 and whether a model-step axis was given."""
    f = np.asarray(features, dtype=np.float64) if not isinstance(features, (list, tuple)) \
        else np.stack([np.asarray(v, dtype=np.float64) for v in features])
    if f.ndim not in (2, 3):
        raise ValueError(f"features: expected (stimuli, D) or (model steps, stimuli, D) (flatten C, H, W into D), "
                         f"got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features: contains NaN or inf values")
    return (f[None] if f.ndim == 2 else f), f.ndim == 3


def _regressor(method: str, alphas, n_components: int, n_train: int, d: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if method == "ridge":
        from sklearn.linear_model import RidgeCV
        return make_pipeline(StandardScaler(), RidgeCV(alphas=alphas, alpha_per_target=True))
    from sklearn.cross_decomposition import PLSRegression
    return make_pipeline(StandardScaler(), PLSRegression(n_components=max(1, min(n_components, n_train - 1, d)),
                                                         scale=False))


def neural_predictivity(features, responses, *, method: str = "ridge", alphas=DEFAULT_ALPHAS,
                        n_components: int = 25, folds: int = 5, seed: int = 0, split_half=None,
                        score: str = "ev", min_ceiling: float = 0.1, noise_ceiling_values=None) -> dict:
    """Cross-validated linear predictivity of ``responses`` from ``features`` (see the module docstring).

    ``features``: (stimuli, D), or (model steps, stimuli, D) to score every model step.
    ``responses``: (stimuli, neurons, bins) trial-averaged, or (repetitions, stimuli, neurons, bins)
    (the mean over repetitions is predicted, and the repetitions give the noise ceiling).
    ``split_half``: None or an int (the number of random split halves for :func:`noise_ceiling`,
    default 10), or an array (repetitions, stimuli, neurons, bins) of single-trial responses used
    for the ceiling when ``responses`` is already averaged. ``noise_ceiling_values``: a precomputed
    (neurons, bins) ceiling instead. ``method``: "ridge" (``alphas``) or "pls" (``n_components``);
    ``score``: "ev" or "r2"; KFold over stimuli shuffled by ``seed``.

    Returns numpy arrays (a leading model-step axis when ``features`` had one): ``ev`` (…, neurons,
    bins) the score, ``ev_median`` (…, bins), ``noise_ceiling`` (neurons, bins) or None,
    ``corrected_ev`` (…, bins) = median over reliable neurons (ρ > ``min_ceiling``) of ev / ρ, or
    None without a ceiling; plus ``reliable`` (neurons, bins) and the settings.
    """
    require("sklearn", "classification")
    from sklearn.model_selection import KFold
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    if score not in SCORES:
        raise unknown_name("score", score, SCORES)
    feats, per_step = _features(features)
    r = _responses(responses)
    target = r.mean(0) if r.ndim == 4 else r
    s, n_neurons, n_bins = target.shape
    if feats.shape[1] != s:
        raise ValueError(f"features: expected {s} stimuli (responses have shape {r.shape}, {_RESPONSE_SHAPES}), "
                         f"got {feats.shape[1]} rows (features shape {feats.shape[1:]} per step)")
    check_int(f"folds (at most the number of stimuli, {s})", folds, 2, s)
    n_splits = split_half if isinstance(split_half, int) and not isinstance(split_half, bool) else 10
    if noise_ceiling_values is not None:
        ceiling = np.asarray(noise_ceiling_values, dtype=np.float64)
        if ceiling.shape != (n_neurons, n_bins):
            raise ValueError(f"noise_ceiling_values: expected shape (neurons, bins) = {(n_neurons, n_bins)}, "
                             f"got {ceiling.shape}")
    elif split_half is not None and not isinstance(split_half, int):
        reps = _responses(split_half, "split_half")
        if reps.ndim != 4 or reps.shape[1:] != target.shape:
            raise ValueError(f"split_half: expected single-trial responses (repetitions, stimuli, neurons, time bins) "
                             f"= (R, {s}, {n_neurons}, {n_bins}), got shape {reps.shape}")
        ceiling = noise_ceiling(reps, n_splits, seed)
    elif r.ndim == 4:
        ceiling = noise_ceiling(r, n_splits, seed)
    else:
        ceiling = None

    y = target.reshape(s, -1)
    cv = KFold(folds, shuffle=True, random_state=seed)
    ev = np.empty((feats.shape[0], n_neurons, n_bins))
    for t, x in enumerate(feats):
        pred = np.empty_like(y)
        for tr, te in cv.split(x):
            reg = _regressor(method, alphas, n_components, len(tr), x.shape[1]).fit(x[tr], y[tr])
            pred[te] = np.asarray(reg.predict(x[te])).reshape(len(te), -1)
        if score == "ev":
            ss = ((y - y.mean(0)) ** 2).sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                sc = np.where(ss > 0, 1 - ((y - pred) ** 2).sum(0) / np.where(ss > 0, ss, 1.0), np.nan)
        else:
            sc = _corr(y, pred) ** 2
        ev[t] = sc.reshape(n_neurons, n_bins)

    ev_median = _nanmedian(ev, 1)
    corrected, reliable = None, None
    if ceiling is not None:
        reliable = np.isfinite(ceiling) & (ceiling > min_ceiling)
        corrected = np.full((len(ev), n_bins), np.nan)
        for b in range(n_bins):
            ok = reliable[:, b]
            if ok.any():
                corrected[:, b] = _nanmedian(ev[:, ok, b] / ceiling[ok, b], 1)
    squeeze = (lambda a: a) if per_step else (lambda a: None if a is None else a[0])
    return {"method": method, "score": score, "folds": folds, "seed": seed, "n_stimuli": s,
            "n_neurons": n_neurons, "n_bins": n_bins, "n_reps": r.shape[0] if r.ndim == 4 else None,
            "min_ceiling": float(min_ceiling), "ev": squeeze(ev), "ev_median": squeeze(ev_median),
            "noise_ceiling": ceiling, "reliable": reliable, "corrected_ev": squeeze(corrected)}


def features_by_area_step(area_outputs: dict, steps=None) -> dict:
    """``{(area, step): (N, D) float64 array}`` from :func:`~convrnn.analysis.geometry.collect_area_outputs`'
    ``{area: (T, N, C, H, W)}``; ``steps``: 1-based steps to keep (default all)."""
    out = {}
    for name, a in area_outputs.items():
        a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, dtype=np.float64)
        if a.ndim < 3:
            raise ValueError(f"area {name!r}: expected outputs (steps, N, ...), got shape {a.shape}")
        keep = range(1, a.shape[0] + 1) if steps is None else steps
        for t in keep:
            if not 1 <= t <= a.shape[0]:
                raise ValueError(f"steps: expected steps in 1..{a.shape[0]}, got {t}")
            out[(name, int(t))] = a[t - 1].reshape(a.shape[1], -1)
    return out


def predictivity_report(model, images, responses, steps: int | None = None, areas=None, *, method: str = "ridge",
                        alphas=DEFAULT_ALPHAS, n_components: int = 25, folds: int = 5, seed: int = 0,
                        split_half=None, score: str = "ev", min_ceiling: float = 0.1, batch_size: int = 256,
                        pool: int | None = None) -> dict:
    """Predictivity of every area at every model step 1..``steps`` (default the model's config steps)
    for ``responses`` to ``images`` (stimuli, C, H, W) — JSON-ready (``nan`` as ``null``).

    Per area: ``corrected_ev`` [steps][bins] (None without a noise ceiling) and ``ev_median``
    [steps][bins]. ``best``: for each neural time bin the (area, step) with the highest corrected
    EV (the raw median EV without a ceiling). ``noise_ceiling_median`` [bins]: median ρ over neurons.
    """
    names = area_names(model, areas)
    if steps is None:
        steps = int(getattr(getattr(model, "config", None), "steps", 0)) or None
        if steps is None:
            raise ValueError("steps: the model has no config.steps; pass steps=")
    r = _responses(responses)
    s = r.shape[-3]
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images).float().div_(255.0) if images.dtype == np.uint8 \
            else torch.from_numpy(np.asarray(images, dtype=np.float32))
    if getattr(images, "ndim", None) != 4 or images.shape[0] != s:
        raise ValueError(f"images: expected (stimuli={s}, C, H, W) to match responses {_RESPONSE_SHAPES} of shape "
                         f"{r.shape}, got {tuple(getattr(images, 'shape', ()))}")
    acts = collect_area_outputs(model, images, steps, names, batch_size, pool=pool)
    ceiling = None
    if r.ndim == 4 or (split_half is not None and not isinstance(split_half, int)):
        n_splits = split_half if isinstance(split_half, int) and not isinstance(split_half, bool) else 10
        ceiling = noise_ceiling(r if r.ndim == 4 else split_half, n_splits, seed)
    kw = dict(method=method, alphas=alphas, n_components=n_components, folds=folds, seed=seed, score=score,
              min_ceiling=min_ceiling, noise_ceiling_values=ceiling)
    report = {"analysis": "predictivity", "method": method, "score": score, "folds": folds, "seed": int(seed),
              "steps": steps, "n_stimuli": s, "n_neurons": r.shape[-2], "n_bins": r.shape[-1],
              "n_reps": r.shape[0] if r.ndim == 4 else None, "min_ceiling": float(min_ceiling),
              "noise_ceiling_median": None if ceiling is None else _nanmedian(ceiling, 0), "areas": {}}
    for n in names:
        a = acts.pop(n)
        res = neural_predictivity(a.reshape(a.shape[0], a.shape[1], -1).double().numpy(), r, **kw)
        report["areas"][n] = {"corrected_ev": res["corrected_ev"], "ev_median": res["ev_median"]}
    key = "corrected_ev" if ceiling is not None else "ev_median"
    best = []
    for b in range(r.shape[-1]):
        cands = [(v[t][b], n, t + 1) for n, v in ((n, report["areas"][n][key]) for n in names)
                 for t in range(steps) if np.isfinite(v[t][b])]
        top = max(cands, default=(np.nan, None, None))
        best.append({"bin": b, "area": top[1], "step": top[2], key: top[0]})
    report["best_measure"], report["best"] = key, best
    return json_ready(report)


def write_predictivity_report(report: dict, out_dir) -> list[Path]:
    """Write ``predictivity.json`` (atomic) and, with matplotlib, ``predictivity.png``: per area the
    best corrected EV over model steps vs neural time bin, and the model step that reaches it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "predictivity.json"]
    atomic_write_text(paths[0], json.dumps(report, indent=1) + "\n")
    plt = pyplot(optional=True)
    if plt is None:       # plots are optional
        return paths

    key = report.get("best_measure", "corrected_ev")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = np.arange(report["n_bins"])
    for n, r in report["areas"].items():
        v = np.array([[np.nan if e is None else e for e in row] for row in (r[key] or [])], dtype=float)
        if v.size == 0 or not np.isfinite(v).any(axis=0).any():
            continue
        ok = np.isfinite(v).any(0)
        best = np.full(len(bins), np.nan)
        best[ok] = np.nanmax(v[:, ok], 0)
        step = np.full(len(bins), np.nan)
        step[ok] = np.nanargmax(v[:, ok], 0) + 1
        ax1.plot(bins, best, "o-", label=n)
        ax2.plot(bins, step, "o-", label=n)
    ax1.set(xlabel="neural time bin", ylabel="noise-corrected EV" if key == "corrected_ev" else "median EV",
            title="Best over model steps")
    ax2.set(xlabel="neural time bin", ylabel="best model step", title="Model step that predicts best")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "predictivity.png", dpi=110))
    return paths
