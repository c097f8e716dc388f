"""Performance and background sculpting of classifiers at every Higgs mass of a mass scan (seed paper 004).

For one run and trial, at every mass point m: the test split's signal of that mass point against all
background, scored with m as the hypothesis (a pNN; other classifiers ignore it), the weights scaled per split
and class to the full yield (as Table I). Metrics: the binned significance of the paper (8 equal-signal score
bins, mass window of each bin's 5-95 % signal quantiles), the AUC in m (1 -+ r) (r = 0.04: 120-130 GeV at
125 GeV, the window of Table I scaled with the mass resolution), the background correlation of Table I (score
bins equal in that point's signal) and its excess over the MC noise. Mean and std over trials per mass point;
a table and one plot (AUC and significance against m_H, one line per run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hzg import io, metrics
from hzg.registry import TEST
from hzg.results import evaluation

#: per-mass-point metrics, in table order: name -> (column title, factor shown)
POINT_METRICS: dict[str, tuple[str, float]] = {
    "significance": ("Significance", 1.0),
    "auc": ("AUC [%]", 100.0),
    "bkg_correlation": ("Bkg. Corr. [1e-3]", 1e3),
    "bkg_correlation_excess": ("Bkg. Corr. above noise [1e-3]", 1e3),
}


def point_window(mass: float, relative: float) -> list[float]:
    """AUC window of a mass point: m (1 -+ relative)."""
    return [float(mass) * (1.0 - relative), float(mass) * (1.0 + relative)]


def point_metrics(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    split: np.ndarray,
    higgs_mass: float,
    cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """Metrics of one mass point on the test split, from the events of that point's signal and all
    background (every split: the weights are scaled per split and class to the full yield).

    cfg: n_score_bins, mass_bins (of the correlation) and window_relative.
    """
    y = np.asarray(is_signal).astype(bool)
    w = metrics.split_scaled_weights(np.asarray(weight, np.float64), y, np.asarray(split))
    test = np.asarray(split) == TEST
    s, m, w, y = np.asarray(score)[test], np.asarray(mass)[test], w[test], y[test]
    n_bins = int(cfg["n_score_bins"])
    detail = metrics.binned_significance_detail(s, m, w, y, n_bins=n_bins)
    edges = metrics.mass_edges(cfg["mass_bins"])
    window = point_window(higgs_mass, float(cfg["window_relative"]))
    return {
        "higgs_mass": float(higgs_mass),
        "significance": float(detail["significance"]),
        "significance_mc_err": float(detail["significance_mc_err"]),
        "auc": evaluation.window_auc(s, m, w, y, window),
        "auc_window": window,
        "bkg_correlation": evaluation.background_correlation(s, m, w, y, n_bins, edges),
        "bkg_correlation_excess": evaluation.background_correlation_excess(s, m, w, y, n_bins, edges),
        "n_test": {"signal": int(y.sum()), "background": int((~y).sum())},
    }


def trial_points(
    predict: Callable[[pd.DataFrame, float], np.ndarray],
    frame: pd.DataFrame,
    true_mass: np.ndarray,
    split: np.ndarray,
    masses: Sequence[float],
    cfg: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """`point_metrics` at every mass point for one trial: `predict(events, m)` scores the events of that
    point's signal (`true_mass` == m) and all background (NaN true mass) with hypothesis m."""
    y = frame["is_signal"].to_numpy().astype(bool)
    out = []
    for m in masses:
        sel = ~y | np.isclose(true_mass, m)
        if not (y & sel).any():
            raise ValueError(f"no signal event at the mass point {m} GeV")
        sub = frame[sel]
        score = np.asarray(predict(sub, float(m)), np.float64)
        out.append(
            point_metrics(
                score,
                sub["mllg"].to_numpy(),
                sub["weight"].to_numpy(),
                y[sel],
                np.asarray(split)[sel],
                m,
                cfg,
            )
        )
    return out


def summarise_points(trials: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Mean and std over trials of every metric, per mass point (the trials list their points alike)."""
    out = []
    for points in zip(*trials):
        row: dict[str, Any] = {"higgs_mass": points[0]["higgs_mass"]}
        for key in (*POINT_METRICS, "significance_mc_err"):
            row[key] = evaluation.aggregate([p[key] for p in points])
        out.append(row)
    return out


def table_frame(runs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (run, mass point): mean and std of every metric, as shown (AUC in %, correlation x 1e3)."""
    rows = []
    for name, result in runs.items():
        for point in result["points"]:
            row = {"run": name, "title": result["title"], "higgs_mass": point["higgs_mass"]}
            for key, (_, factor) in POINT_METRICS.items():
                agg = point[key]
                row[key] = None if agg["mean"] is None else agg["mean"] * factor
                row[f"{key}_std"] = None if agg["std"] is None else agg["std"] * factor
            rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: Any, std: Any, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "N.A."
    if std is None or (isinstance(std, float) and not math.isfinite(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(frame: pd.DataFrame, caption: str) -> str:
    """The table as Markdown: one row per run and mass point."""
    digits = {"significance": 2, "auc": 1, "bkg_correlation": 2, "bkg_correlation_excess": 2}
    head = ["Run", "m_H [GeV]", *(title for title, _ in POINT_METRICS.values())]
    lines = [f"{caption}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [r["title"], f"{r['higgs_mass']:g}"]
        cells += [_cell(r[k], r[f"{k}_std"], digits[k]) for k in POINT_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    runs: Mapping[str, Mapping[str, Any]],
    md: str | Path,
    csv: str | Path,
    caption: str,
    sculpting: pd.DataFrame | None = None,
    sculpting_csv: str | Path | None = None,
) -> None:
    """The per-mass-point table (Markdown and CSV) and, where given, the sculpting table at the nominal mass
    after it (and as its own CSV)."""
    frame = table_frame(runs)
    with io.atomic_path(Path(csv)) as tmp:
        frame.to_csv(tmp, index=False)
    text = markdown(frame, caption)
    if sculpting is not None:
        nominal = next(iter(runs.values()))["nominal_mass"]
        text += "\n" + sculpting_markdown(sculpting, nominal)
        if sculpting_csv is not None:
            with io.atomic_path(Path(sculpting_csv)) as tmp:
                sculpting.to_csv(tmp, index=False)
    with io.atomic_path(Path(md)) as tmp:
        Path(tmp).write_text(text)


#: background sculpting at the nominal mass, from Table I (metrics.json) and the fit (fit.json):
#: name -> (column title, factor shown)
SCULPTING_METRICS: dict[str, tuple[str, float]] = {
    "bkg_correlation": ("Bkg. Corr. [1e-3]", 1e3),
    "bkg_correlation_floor": ("Bkg. Corr. floor [1e-3]", 1e3),
    "bkg_correlation_excess": ("Bkg. Corr. above noise [1e-3]", 1e3),
    "bkg_dcor2": ("Bkg. dCor² [1e-3]", 1e3),
}


def sculpting_frame(
    titles: Mapping[str, str], metrics: Mapping[str, Mapping[str, Any]], fits: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per run: the background-correlation metrics of Table I (mean and std over trials) and the fit's
    spurious signal (sum of |S_spur| and of its systematic zeta over the fitted categories, in events, and the
    largest |S_spur| / sigma_S), all at the nominal mass."""
    from hzg.results.tables import spurious_summary

    rows = []
    for name, title in titles.items():
        row: dict[str, Any] = {"run": name, "title": title}
        summary = metrics[name]["summary"]
        for key, (_, factor) in SCULPTING_METRICS.items():
            agg = summary.get(key, {})
            row[key] = None if agg.get("mean") is None else agg["mean"] * factor
            row[f"{key}_std"] = None if agg.get("std") is None else agg["std"] * factor
        spur = spurious_summary(fits[name].get("categories", {}))
        row |= {
            "spurious_sum_abs": spur["sum_abs"],
            "spurious_sum_zeta": spur["sum_zeta"],
            "spurious_max_ratio": spur["max_ratio"],
        }
        rows.append(row)
    return pd.DataFrame(rows)


def sculpting_markdown(frame: pd.DataFrame, nominal_mass: float) -> str:
    head = [
        "Run",
        *(title for title, _ in SCULPTING_METRICS.values()),
        "Σ ∣S_spur∣ (events)",
        "Σζ (events)",
        "max ∣S_spur∣/σ_S",
    ]
    lines = [
        f"Background sculpting at {nominal_mass:g} GeV: Table I's correlation metrics (mean ± std over "
        "trials) and the fit's spurious signal (its trial, summed over the fitted categories)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for _, r in frame.iterrows():
        cells = [r["title"], *(_cell(r[k], r[f"{k}_std"], 2) for k in SCULPTING_METRICS)]
        cells += [_cell(r[k], None, 1) for k in ("spurious_sum_abs", "spurious_sum_zeta")]
        cells.append(_cell(r["spurious_max_ratio"], None, 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(
    runs: Mapping[str, Mapping[str, Any]],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    window_relative: float = 0.04,
) -> list[Path]:
    """AUC (top) and binned significance (bottom) against the Higgs mass, one line per run, mean ± std over
    trials; the nominal mass marked."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    from hzg.results import plotting

    hep.style.use("CMS")
    fig, (ax_auc, ax_z) = plt.subplots(2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"hspace": 0.06})
    nominal = None
    for i, (name, result) in enumerate(runs.items()):
        pts = result["points"]
        m = np.array([p["higgs_mass"] for p in pts])
        nominal = result.get("nominal_mass", nominal)
        for ax, key, factor in ((ax_auc, "auc", 100.0), (ax_z, "significance", 1.0)):
            mean = np.array([np.nan if p[key]["mean"] is None else p[key]["mean"] for p in pts]) * factor
            std = np.array([0.0 if p[key]["std"] is None else p[key]["std"] for p in pts]) * factor
            ax.errorbar(
                m + 0.25 * (i - 0.5 * (len(runs) - 1)),  # side by side, so the error bars do not overlap
                mean,
                yerr=std,
                marker="os^Dv<>"[i % 7],
                markersize=6,
                capsize=3,
                label=result["title"],
            )
    for ax in (ax_auc, ax_z):
        if nominal is not None:
            ax.axvline(nominal, color="grey", ls=":", lw=1)
    ax_auc.set_ylabel(plotting.axis_label("AUC", "%"), fontsize=22)
    ax_z.set_ylabel(plotting.axis_label("Significance", r"$\sigma$"), fontsize=22)
    ax_z.set_xlabel(plotting.axis_label(r"$m_H$", "GeV"))
    fig.align_ylabels((ax_auc, ax_z))
    ax_auc.legend(
        fontsize=13,
        loc="best",
        ncol=2,
        title=rf"AUC in $m_H$ (1 $\mp$ {window_relative:g}); test split, mean $\pm$ std over trials",
        title_fontsize=12,
    )
    plotting.label_simulation(ax_auc, luminosity_fb, sqrt_s_tev)
    return plotting.save(fig, stem)


def evaluate_run(
    checkpoints: Sequence[str | Path],
    feature_paths: Sequence[str | Path],
    sample_masses: Mapping[str, float],
    nominal_mass: float,
    cfg: Mapping[str, Any],
    title: str,
) -> dict[str, Any]:
    """The per-mass-point metrics of one run: every trial's checkpoint (in trial order) on its test split of
    the features of every sample (the mass points' signal and the background), mean and std over trials."""
    from hzg.data.features import sample_id
    from hzg.learn.classifier import Classifier
    from hzg.learn.strategies import true_masses
    from hzg.registry import split_column

    frame = pd.concat([pd.read_parquet(p) for p in feature_paths], ignore_index=True)
    ids = {sample_id(s): float(m) for s, m in sample_masses.items()}
    true_mass = true_masses(frame["sample_id"].to_numpy(), frame["is_signal"].to_numpy(), ids, nominal_mass)
    masses = sorted(set(ids.values()))
    trials = []
    for trial, path in enumerate(checkpoints):
        clf = Classifier.load(path)
        split = frame[split_column(trial)].to_numpy()
        trials.append(
            trial_points(
                lambda events, m: clf.predict(events, hypothesis=m), frame, true_mass, split, masses, cfg
            )
        )
    return {
        "title": title,
        "nominal_mass": float(nominal_mass),
        "masses": masses,
        "config": dict(cfg),
        "points": summarise_points(trials),
        "trials": trials,
    }
