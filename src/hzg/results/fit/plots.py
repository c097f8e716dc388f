"""Plots of the mℓℓγ fit: pre-/post-fit mass spectra per category, likelihood scan, pulls, impact ranking.

Inputs are the plain dicts of hzg.results.fit (`inference.category_yields`, a `Block.to_dict()["fit"]`,
`ranking`, or the same read back from fit.json), so the plots can be redrawn without refitting. A "Simulation"
label naming the generator and the detector response (no experiment's name: this is not a collaboration's
result), luminosity and sqrt(s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from hzg.results.plotting import BACKGROUND_COLOR, MLLG_LABEL, SIGNAL_COLOR, label_simulation, save  # noqa: E402

STAT_COLOR = "#7a21dd"


def _signal_scale(signal: np.ndarray, background: np.ndarray) -> int:
    """Largest power of ten keeping the scaled signal peak below half the background peak (at least 1)."""
    s, b = float(np.max(signal, initial=0.0)), float(np.max(background, initial=0.0))
    if s <= 0 or s >= 0.05 * b:
        return 1
    return int(10 ** np.floor(np.log10(0.5 * b / s)))


def mass_fit(
    yields: Mapping[str, Any],
    edges: Sequence[float],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    category: str,
    stage: str = "Pre-fit",
    mc_sumw2: Sequence[float] | None = None,
) -> list[Path]:
    """Stacked background + signal mℓℓγ of one category with the data (the MC); lower panel data - background.

    `yields`: {"signal", "background", "data"} arrays per mass bin (hzg.results.fit.inference.category_yields
    of one category): the data are the MC (signal + background MC), the background the smooth function's
    template.
    Data errors are sqrt(N), those of a data set of that size. `mc_sumw2`: the sum of w^2 per bin of the MC
    that makes the data (signal + background), drawn as a hatched box of +-sqrt(sum w^2) about each point in
    both panels: the MC's own statistical error, against which the MC's deviations from the smooth function
    are to be read. A signal too small to see in the stack is also drawn scaled by a power of ten.
    """
    edges = np.asarray(edges, dtype=float)
    sig, bkg, data = (np.asarray(yields[k], dtype=float) for k in ("signal", "background", "data"))
    centres, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    hep.style.use("CMS")
    fig, (ax, low) = plt.subplots(
        2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    hep.histplot(
        [bkg, sig],
        edges,
        stack=True,
        histtype="fill",
        ax=ax,
        color=[BACKGROUND_COLOR, SIGNAL_COLOR],
        label=[r"Background (fitted function)", r"$H\to Z\gamma$ signal"],
        alpha=0.8,
    )
    scale = _signal_scale(sig, bkg)
    if scale > 1:
        hep.histplot(
            sig * scale, edges, ax=ax, color=SIGNAL_COLOR, lw=2, ls="--", label=rf"Signal $\times${scale:g}"
        )
    ax.errorbar(
        centres,
        data,
        yerr=np.sqrt(np.clip(data, 0, None)),
        fmt="o",
        color="black",
        ms=5,
        label="MC as data",
    )
    mc_err = None if mc_sumw2 is None else np.sqrt(np.clip(np.asarray(mc_sumw2, dtype=float), 0.0, None))
    if mc_err is not None:
        # plain text: mathtext's radical is missing from the style's font (a warning per figure)
        _mc_stat_boxes(ax, edges, data, mc_err, label="MC stat. (√Σw²)")
    ax.set_ylabel(f"Events / {width:g} GeV")
    top = max(float(np.max(np.concatenate([data, sig + bkg, sig * scale]), initial=0.0)), 1e-9)
    ax.set_ylim(0, 1.45 * top)
    ax.legend(loc="upper right", fontsize=17, title=f"{stage}, category {category}", title_fontsize=17)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    hep.histplot(sig, edges, ax=low, color=SIGNAL_COLOR, histtype="fill", alpha=0.8)
    low.errorbar(centres, data - bkg, yerr=np.sqrt(np.clip(data, 0, None)), fmt="o", color="black", ms=5)
    if mc_err is not None:
        _mc_stat_boxes(low, edges, data - bkg, mc_err)
    low.axhline(0.0, color="grey", lw=1)
    low.set_ylabel("Data − Bkg.", fontsize=18)
    low.set_xlabel(MLLG_LABEL)
    low.set_xlim(edges[0], edges[-1])
    return save(fig, stem)


def _mc_stat_boxes(
    ax: plt.Axes, edges: np.ndarray, centre: np.ndarray, error: np.ndarray, label: str | None = None
) -> None:
    """Hatched boxes of +-error about `centre`, one per bin (matplotlib's stairs, filled between the two
    edges)."""
    ax.stairs(
        centre + error,
        edges,
        baseline=centre - error,
        fill=True,
        facecolor="none",
        edgecolor="grey",
        hatch="////",
        linewidth=0,
        label=label,
    )


def likelihood_scan(
    fit: Mapping[str, Any],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    stat_only: Mapping[str, Any] | None = None,
) -> list[Path]:
    """-2 Delta ln L versus mu (a fit dict with "scan", mu_hat, err_up, err_down), 68 % / 95 % lines, mu_hat
    +- errors."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    curves = [(fit, "With systematics", "black", "-")]
    if stat_only is not None:
        curves.append((stat_only, "Statistical only", STAT_COLOR, "--"))
    y_max = 0.0
    for result, label, color, ls in curves:
        mu, delta = np.asarray(result["scan"]["mu"]), np.asarray(result["scan"]["delta_2nll"])
        text = (
            rf"{label}: $\hat\mu = {result['mu_hat']:.2f}"
            rf"^{{+{result['err_up']:.2f}}}_{{-{result['err_down']:.2f}}}$"
        )
        ax.plot(mu, delta, color=color, ls=ls, lw=2, marker="o", ms=4, label=text)
        y_max = max(y_max, float(np.max(delta, initial=0.0)))
    for level, name in ((1.0, "68% CL"), (3.84, "95% CL")):
        ax.axhline(level, color="grey", lw=1, ls=":")
        ax.text(0.02, level, name, transform=ax.get_yaxis_transform(), va="bottom", fontsize=15, color="grey")
    ax.set_xlabel(r"Signal strength $\mu$")
    ax.set_ylabel(r"$-2\,\Delta\ln L$")
    ax.set_ylim(0, max(1.5 * y_max, 5.0))
    ax.legend(loc="upper center", fontsize=17)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def pulls(
    fit: Mapping[str, Any],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    include_mc_stat: bool = False,
) -> list[Path]:
    """Pull (value - pre-fit) / pre-fit error of each constrained parameter with its post-fit error bar.

    The per-category signal MC-statistical terms are left out unless `include_mc_stat`.
    """
    rows = [
        p
        for p in fit["parameters"]
        if p["pull"] is not None and (include_mc_stat or not p["name"].startswith("signal_mc_stat_"))
    ][::-1]
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 2.5 + 0.5 * max(len(rows), 2)))
    ax.axvspan(-2, 2, color="#f5dd42", alpha=0.6, lw=0)
    ax.axvspan(-1, 1, color="#62c462", alpha=0.6, lw=0)
    ax.axvline(0, color="grey", lw=1)
    y = np.arange(len(rows))
    ax.errorbar(
        [p["pull"] for p in rows], y, xerr=[p["pull_error"] for p in rows], fmt="o", color="black", ms=6
    )
    ax.set_yticks(y, [p["name"] for p in rows], fontsize=16)
    ax.tick_params(axis="y", which="minor", left=False, right=False)
    ax.set_ylim(-0.7, len(rows) - 0.3 if rows else 1.0)
    ax.set_xlim(-3, 3)
    ax.set_xlabel(r"$(\hat\theta - \theta_0)\,/\,\Delta\theta$")
    if not rows:
        ax.text(
            0.5, 0.5, "no constrained nuisance parameter", transform=ax.transAxes, ha="center", fontsize=16
        )
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def ranking(
    entries: Sequence[Mapping[str, Any]],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    top: int = 20,
) -> list[Path]:
    """Horizontal bars of the impact on mu of the `top` highest-ranked parameters (hzg.results.fit.ranking
    order; a failed refit, None, is drawn as 0).

    Post-fit +1 sigma / -1 sigma impacts filled, pre-fit ones (where computed) as outlines.
    """
    rows = [{k: (0.0 if v is None else v) for k, v in r.items()} for r in list(entries)[:top][::-1]]
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 2.5 + 0.5 * max(len(rows), 2)))
    y = np.arange(len(rows))
    if rows and "prefit_up" in rows[0]:
        for key, color in (("prefit_up", SIGNAL_COLOR), ("prefit_down", BACKGROUND_COLOR)):
            ax.barh(
                y,
                [r[key] for r in rows],
                height=0.7,
                fill=False,
                edgecolor=color,
                lw=1.5,
                label=rf"Pre-fit {'+' if key.endswith('up') else '-'}1$\sigma$ impact",
            )
    for key, color in (("postfit_up", SIGNAL_COLOR), ("postfit_down", BACKGROUND_COLOR)):
        ax.barh(
            y,
            [r[key] for r in rows],
            height=0.45,
            color=color,
            alpha=0.85,
            label=rf"Post-fit {'+' if key.endswith('up') else '-'}1$\sigma$ impact",
        )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=16)
    ax.tick_params(axis="y", which="minor", left=False, right=False)
    ax.set_ylim(-0.7, len(rows) + 1.8)  # room for the legend above the bars
    span = (
        max(
            (
                max(
                    abs(r["postfit_up"]),
                    abs(r["postfit_down"]),
                    abs(r.get("prefit_up", 0.0)),
                    abs(r.get("prefit_down", 0.0)),
                )
                for r in rows
            ),
            default=1.0,
        )
        or 1.0
    )
    ax.set_xlim(-1.25 * span, 1.25 * span)
    ax.set_xlabel(r"Impact on $\mu$, $\Delta\hat\mu$")
    ax.legend(loc="upper center", ncol=2, fontsize=14)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def left_out(
    stem: str | Path, luminosity_fb: float, sqrt_s_tev: float, category: str, reason: str
) -> list[Path]:
    """Placeholder for a category left out of the fit, saying why (so no plot is silently missing)."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    ax.text(
        0.5,
        0.5,
        f"Category {category}: not in the fit\n({reason})",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=18,
    )
    ax.set_xlabel(MLLG_LABEL)
    ax.set_ylabel("Events / GeV")
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)
