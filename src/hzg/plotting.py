"""Plots with matplotlib + mplhep (CMS style, "Simulation" label with sqrt(s) and luminosity)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from hzg import io  # noqa: E402

SIGNAL_COLOR, BACKGROUND_COLOR = "#e42536", "#5790fc"


def axis_label(label: str, unit: str = "") -> str:
    """Axis label with the unit in brackets where there is one."""
    return f"{label} [{unit}]" if unit else label


def label_cms(ax: plt.Axes, lumi_fb: float, sqrt_s_tev: float) -> None:
    """CMS-style 'Simulation' label with luminosity and centre-of-mass energy."""
    hep.cms.label(data=False, lumi=f"{lumi_fb:g}", com=f"{sqrt_s_tev:g}", ax=ax, loc=0, fontsize=20)


def save(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Save `fig` as stem.pdf and stem.png atomically, then close it."""
    paths = []
    for suffix in (".pdf", ".png"):
        path = Path(stem).with_suffix(suffix)
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def binning(values: Sequence[np.ndarray], n_bins: int, discrete: bool = False) -> np.ndarray:
    """Common bin edges covering the 0.5-99.5 % range of all values (integer-centred if discrete)."""
    allv = np.concatenate([np.asarray(v) for v in values])
    if discrete:
        lo, hi = np.floor(allv.min()), np.ceil(allv.max())
        return np.arange(lo - 0.5, hi + 1.5)
    lo, hi = np.percentile(allv, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, n_bins + 1)


def signal_vs_background(sig: np.ndarray, sig_w: np.ndarray, bkg: np.ndarray, bkg_w: np.ndarray,
                         xlabel: str, stem: str | Path, lumi_fb: float, sqrt_s_tev: float,
                         edges: np.ndarray, unit: str = "") -> list[Path]:
    """Normalised signal and background distributions of one variable."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    for values, w, label, color in ((bkg, bkg_w, r"$Z\gamma$ background", BACKGROUND_COLOR),
                                    (sig, sig_w, r"$H\to Z\gamma$ signal", SIGNAL_COLOR)):
        h, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=w)
        hep.histplot(h / h.sum() if h.sum() > 0 else h, edges, ax=ax, label=label, color=color, lw=2)
    ax.set_xlabel(xlabel)
    width = edges[1] - edges[0]
    ax.set_ylabel(f"Fraction of events / {width:.3g}" + (f" {unit}" if unit else ""))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.legend(loc="upper right", fontsize=18)
    label_cms(ax, lumi_fb, sqrt_s_tev)
    return save(fig, stem)
