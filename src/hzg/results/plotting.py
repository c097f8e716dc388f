"""Plots with matplotlib + mplhep (CMS style, "Simulation" label with sqrt(s) and luminosity)."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from hzg import io, metrics, registry  # noqa: E402
from hzg.data.features import LABELS  # noqa: E402
from hzg.results import bands, evaluation  # noqa: E402

if TYPE_CHECKING:
    from hzg.results.interpret import AttentionBlock, Interpretation

SIGNAL_COLOR, BACKGROUND_COLOR = "#e42536", "#5790fc"


def axis_label(label: str, unit: str = "") -> str:
    """Axis label with the unit in brackets where there is one."""
    return f"{label} [{unit}]" if unit else label


MLLG_LABEL = axis_label(r"$m_{\ell\ell\gamma}$", "GeV")


#: what the simulation is, on plots that are not a collaboration's result (no experiment's name)
SIMULATION_LABEL = "Simulation (Pythia 8, parametric detector response)"


def shows_offset_text(ax: plt.Axes) -> bool:
    """Whether the y axis will draw an offset or scale text ("1e4", "+1.2e3") at its top, found from a copy
    of its formatter and its tick locations as they are now, without drawing the figure."""
    formatter = ax.yaxis.get_major_formatter()
    if not (hasattr(formatter, "get_useOffset") and formatter.get_useOffset()):
        return False
    probe = copy.copy(formatter)  # set_locs changes the formatter's state; the draw sets it again anyway
    probe.set_locs(ax.yaxis.get_majorticklocs())
    return bool(probe.get_offset())


def simulation_label_args(luminosity_fb: float, sqrt_s_tev: float) -> dict[str, Any]:
    """mplhep `exp_label`'s arguments of the Simulation label (no experiment's name), without the axes."""
    return {
        "exp": "",
        "llabel": SIMULATION_LABEL,
        "data": False,
        "lumi": f"{luminosity_fb:g}",
        "com": f"{sqrt_s_tev:g}",
        "loc": 0,
        "fontsize": 16,
    }


def label_simulation(ax: plt.Axes, luminosity_fb: float, sqrt_s_tev: float) -> None:
    """'Simulation' label naming the generator and the detector response, with luminosity and sqrt(s).

    mplhep draws the whole figure up to twice to place the label: to measure the y axis' offset text whenever
    the formatter may show one, and before it measures the label's own texts. Neither draw moves anything in
    a figure without a layout engine (the axes stay where the figure put them, a text's size is its font's),
    so there mplhep measures the offset text only where the axis has one (`shows_offset_text`) and its
    canvas draw is a no-op while it places the label. The label lands where mplhep's own draws put it
    (tested: plain and fit-plot-like figures, with and without an offset text); a fit plot takes 0.7 of the
    time. A figure with a layout engine (constrained: the attention maps) gets mplhep's draws.
    """
    fig = ax.figure
    frozen = fig.get_layout_engine() is None
    if frozen:
        fig.canvas.draw = lambda *args, **kwargs: None  # an instance attribute over the canvas' method
    try:
        hep.label.exp_label(
            ax=ax,
            **simulation_label_args(luminosity_fb, sqrt_s_tev),
            scilocator_adjust=shows_offset_text(ax) if frozen else True,
        )
    finally:
        if frozen:
            del fig.canvas.draw  # the canvas' own method again


#: padding around the tight bounding box of a saved figure, inches (matplotlib's savefig.pad_inches default)
SAVE_PAD_INCHES = 0.1
#: resolution of the saved PNG (and of the PDF's rasterised parts), dots per inch
SAVE_DPI = 110


def pixel_bbox(bbox: Bbox, dpi: float) -> Bbox:
    """`bbox` (inches) grown outwards to whole pixels at `dpi`: the crop of a figure drawn at `dpi` to this
    box is, pixel for pixel, what savefig(bbox_inches=box) draws (an integer shift of the same drawing)."""
    x0, y0 = math.floor(bbox.x0 * dpi), math.floor(bbox.y0 * dpi)
    x1, y1 = math.ceil(bbox.x1 * dpi), math.ceil(bbox.y1 * dpi)
    return Bbox.from_extents(x0 / dpi, y0 / dpi, x1 / dpi, y1 / dpi)


def drawn_png(fig: plt.Figure, bbox: Bbox, tight: Bbox) -> np.ndarray | None:
    """The RGBA pixels of `bbox` (inches, whole pixels: `pixel_bbox`) from the figure's last Agg draw, or None
    when that draw cannot give them: a canvas without an Agg buffer, or artists (`tight`, their box) reaching
    past the figure's edge, which the draw clipped. The padding beyond the edge gets the figure's face
    colour, as savefig paints it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width, height = fig.get_size_inches()
    inside = tight.x0 >= 0 and tight.y0 >= 0 and tight.x1 <= width and tight.y1 <= height
    if not (isinstance(fig.canvas, FigureCanvasAgg) and inside):
        return None
    buffer = np.asarray(fig.canvas.buffer_rgba())  # (rows from the top, columns, RGBA)
    dpi = fig.dpi
    left, right = round(bbox.x0 * dpi), round(bbox.x1 * dpi)
    top, bottom = buffer.shape[0] - round(bbox.y1 * dpi), buffer.shape[0] - round(bbox.y0 * dpi)
    face = np.asarray(matplotlib.colors.to_rgba_array(fig.get_facecolor())[0] * 255 + 0.5, np.uint8)
    out = np.empty((bottom - top, right - left, 4), np.uint8)
    out[...] = face
    rows = slice(max(top, 0), min(bottom, buffer.shape[0]))
    cols = slice(max(left, 0), min(right, buffer.shape[1]))
    out[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = buffer[rows, cols]
    return out


def save(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Save `fig` as stem.pdf and stem.png atomically, then close it.

    The figure is drawn once, at the PNG's resolution: that draw places the layout, gives the tight bounding
    box of both files (`bbox_inches="tight"` would draw the figure once more per file: a third of a fit
    plot's time) and is the PNG, cropped to that box (savefig would draw it again; the crop is what it draws,
    pixel for pixel, tested). Only the PDF is drawn once more.
    """
    fig.set_dpi(SAVE_DPI)
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    bbox = pixel_bbox(tight.padded(SAVE_PAD_INCHES), SAVE_DPI)
    if fig.get_layout_engine() is not None:
        # the layout (constrained: the attention maps) was placed by that draw; frozen, it is not redone for
        # the PDF (half of a large attention-map figure's time), and both files get the drawn positions
        fig.set_layout_engine("none")
    pixels = drawn_png(fig, bbox, tight)
    paths = []
    for suffix in (".pdf", ".png"):
        path = Path(stem).with_suffix(suffix)
        with io.atomic_path(path) as tmp:
            if suffix == ".png" and pixels is not None:
                # as matplotlib's PNG writer (print_png) stores a figure's pixels
                mpimg.imsave(tmp, pixels, format="png", origin="upper", dpi=SAVE_DPI)
            else:
                fig.savefig(tmp, format=suffix[1:], dpi=SAVE_DPI, bbox_inches=bbox)
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


def signal_vs_background(
    sig: np.ndarray,
    sig_w: np.ndarray,
    bkg: np.ndarray,
    bkg_w: np.ndarray,
    xlabel: str,
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    edges: np.ndarray,
    unit: str = "",
) -> list[Path]:
    """Normalised signal and background distributions of one variable."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    for values, w, label, color in (
        (bkg, bkg_w, r"$Z\gamma$ background", BACKGROUND_COLOR),
        (sig, sig_w, r"$H\to Z\gamma$ signal", SIGNAL_COLOR),
    ):
        h, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=w)
        hep.histplot(h / h.sum() if h.sum() > 0 else h, edges, ax=ax, label=label, color=color, lw=2)
    ax.set_xlabel(xlabel)
    width = edges[1] - edges[0]
    ax.set_ylabel(f"Fraction of events / {width:.3g}" + (f" {unit}" if unit else ""))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.legend(loc="upper right", fontsize=18)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


# ------------------------------------------------------------- evaluation (paper 000, Sec. IV D-E, Figs. 4-7)
def roc_curves(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    window: Sequence[float],
    note: str = "",
) -> list[Path]:
    """ROC curves (background efficiency vs signal efficiency) of several classifiers, AUC in the legend."""
    fig, ax, colors = _roc_axes()
    for i, (label, fpr, tpr, auc) in enumerate(curves):
        ax.plot(
            tpr,
            fpr,
            lw=2,
            color=colors[i % 10],
            ls=("-", "--")[i // 10 % 2],
            label=f"{label} (AUC = {100 * auc:.1f} %)",
        )
    return _roc_finish(fig, ax, stem, luminosity_fb, sqrt_s_tev, window, f", {note}" if note else "")


def _roc_axes() -> tuple[plt.Figure, plt.Axes, np.ndarray]:
    """A ROC figure with the random classifier's diagonal, and the colours of the runs."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 9))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1.5, label="Random (AUC = 50 %)")
    return fig, ax, plt.cm.tab10(np.linspace(0, 1, 10))


def _roc_finish(
    fig: plt.Figure,
    ax: plt.Axes,
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    window: Sequence[float],
    title_suffix: str,
) -> list[Path]:
    """Axes, legend (titled with the mass window and `title_suffix`) and label of a ROC figure; saved."""
    ax.set_xlabel("Signal efficiency")
    ax.set_ylabel("Background efficiency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(
        loc="upper left",
        fontsize=14,
        title=f"Test set, {window[0]:g} < " r"$m_{\ell\ell\gamma}$" f" < {window[1]:g} GeV" + title_suffix,
        title_fontsize=14,
        ncol=1,
    )
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def p_value_text(p: float) -> str:
    """0.43, or 3.1e-05 below 0.01."""
    return "n/a" if p is None or not np.isfinite(p) else f"{p:.2f}" if p >= 0.01 else f"{p:.1e}"


def _normalised(h: np.ndarray, w2: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density (unit area) and its error from sums of weights and of squared weights."""
    total = h.sum()
    if total <= 0:
        return h * 0.0, h * 0.0
    return h / total / widths, np.sqrt(np.clip(w2, 0, None)) / total / widths


def score_distributions(
    classes: Sequence[dict],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    title: str,
    xlabel: str = "Classifier output",
) -> list[Path]:
    """Train vs test score distributions per class with the overtraining p-value, residuals below (Fig. 6).

    classes: dicts with keys name, edges, train (w, w2), test (w, w2), p_value, residuals, test_name and
    optional color (default: the signal colour for "Signal", the background colour otherwise).
    """
    hep.style.use("CMS")
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06}
    )
    ymax = 0.0
    for c in classes:
        c = {"color": SIGNAL_COLOR if c["name"] == "Signal" else BACKGROUND_COLOR, **c}
        edges = np.asarray(c["edges"])
        widths, centres = np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
        test, test_err = _normalised(*c["test"], widths)
        train, train_err = _normalised(*c["train"], widths)
        hep.histplot(
            test, edges, ax=ax, histtype="fill", alpha=0.35, color=c["color"], label=f"{c['name']}, test"
        )
        hep.histplot(test, edges, ax=ax, color=c["color"], lw=1.5)
        ax.errorbar(
            centres,
            train,
            yerr=train_err,
            fmt="o",
            ms=5,
            color=c["color"],
            label=f"{c['name']}, train ({c['test_name']} p = {p_value_text(c['p_value'])})",
        )
        res = np.asarray(c["residuals"], dtype=float)
        rax.plot(centres, res, "o", ms=5, color=c["color"])
        ymax = max(ymax, float(np.nanmax(np.concatenate([test, train + train_err]))))
    ax.set_ylabel("Normalised events / bin width")
    ax.set_ylim(0, 1.55 * ymax if ymax > 0 else 1)
    ax.legend(loc="upper left", fontsize=15, title=title, title_fontsize=15)
    rax.axhline(0, color="grey", lw=1)
    for level in (-2, 2):
        rax.axhline(level, color="grey", lw=1, ls=":")
    rax.set_ylabel("Residual")
    lim = np.nanmax(
        np.abs(np.concatenate([np.asarray(c["residuals"], float) for c in classes] + [np.array([3.0])]))
    )
    rax.set_ylim(-1.15 * lim, 1.15 * lim)
    rax.set_xlabel(xlabel)
    rax.set_xlim(min(c["edges"][0] for c in classes), max(c["edges"][-1] for c in classes))
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def background_mass_shapes(
    edges: np.ndarray,
    shapes: np.ndarray,
    correlation_e3: float,
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    title: str,
    counts: Sequence[int] | None = None,
) -> list[Path]:
    """Normalised background mllg per equal-signal score bin, labelled by signal percentile and, with
    `counts`, the number of background MC events in the bin (Figs. 4-5)."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 8))
    n = len(shapes)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, n))
    width = float(edges[1] - edges[0])
    for k in range(n - 1, -1, -1):  # highest score first: signal percentile 0 %
        lo, hi = 100.0 * (n - 1 - k) / n, 100.0 * (n - k) / n
        label = f"sig. p {lo:.3g}-{hi:.3g} %" + (f" ({counts[k]} MC ev.)" if counts is not None else "")
        if np.isnan(shapes[k]).any():
            ax.plot([], [], color=colors[n - 1 - k], lw=1.8, ls=":", label=label + ", no background")
            continue
        hep.histplot(shapes[k], edges, ax=ax, color=colors[n - 1 - k], lw=1.8, label=label)
    ax.set_xlabel(MLLG_LABEL)
    ax.set_ylabel(f"Fraction of background / {width:.3g} GeV")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, np.nanmax(shapes) * 1.75 if np.isfinite(np.nanmax(shapes)) else 1)
    ax.legend(
        loc="upper right",
        fontsize=12,
        ncol=2,
        title=f"{title}: correlation = {correlation_e3:.1f}"
        r"$\times 10^{-3}$",
        title_fontsize=14,
    )
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


#: One trial's history: (label, epoch, train_loss, val_loss, val_significance, best epoch or None).
History = tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int | None]


def _training_axes() -> tuple[plt.Figure, plt.Axes, plt.Axes, np.ndarray]:
    """The two panels of a training-curve figure (losses above, validation significance below, shared
    epoch axis) and the colours."""
    hep.style.use("CMS")
    fig, (ax, sax) = plt.subplots(2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"hspace": 0.06})
    return fig, ax, sax, plt.cm.tab10(np.linspace(0, 1, 10))


def training_curves(
    histories: Sequence[History],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    title: str,
    xlabel: str = "Epoch",
) -> list[Path]:
    """Training loss (solid) and validation loss (dashed) above, validation significance below, vs epoch; a
    star and a line from the axis mark the selected epoch of each trial (Fig. 7).
    histories: (label, epoch, train_loss, val_loss, val_significance, best epoch or None), one per trial."""
    from matplotlib.lines import Line2D

    fig, ax, sax, colors = _training_axes()
    handles, selected = [], []
    zs = np.concatenate([h[4][np.isfinite(h[4])] for h in histories] + [np.zeros(0)])
    z_lo = zs.min() - 0.1 * max(np.ptp(zs), 1e-3) if zs.size else 0.0
    for i, (label, epoch, train_loss, val_loss, val_z, best) in enumerate(histories):
        col = colors[i % 10]
        ax.plot(epoch, train_loss, color=col, lw=2)
        ok = np.isfinite(val_loss)
        if ok.any():
            ax.plot(epoch[ok], val_loss[ok], color=col, lw=1.5, ls="--", marker="o", ms=3)
        okz = np.isfinite(val_z)
        sax.plot(epoch[okz], val_z[okz], color=col, lw=1.5, marker="o", ms=4)
        handles.append(Line2D([], [], color=col, lw=2, label=label))
        sel = epoch == best
        if best is not None and sel.any() and np.isfinite(val_z[sel][0]):
            sax.vlines(best, z_lo, val_z[sel][0], color=col, ls=":", lw=1.5)
            sax.plot(best, val_z[sel][0], marker="*", ms=18, color=col, markeredgecolor="black", ls="none")
            selected.append(str(best))
    handles.append(Line2D([], [], color="black", lw=2, label="training loss"))
    if any(np.isfinite(h[3]).any() for h in histories):
        handles.append(
            Line2D([], [], color="black", lw=1.5, ls="--", marker="o", ms=3, label="validation loss")
        )
    ax.set_ylabel("Loss")
    losses = np.concatenate([np.r_[h[2], h[3]] for h in histories])
    losses = losses[np.isfinite(losses)]
    top, bottom = losses.max(), losses.min()
    ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.7 * (top - bottom))
    ax.legend(handles=handles, loc="upper right", fontsize=14, ncol=2, title=title, title_fontsize=15)
    sax.set_ylabel(r"Validation significance [$\sigma$]")
    if zs.size:
        sax.set_ylim(z_lo, zs.max() + 0.6 * max(np.ptp(zs), 1e-3))
    star = [
        Line2D(
            [],
            [],
            marker="*",
            ms=15,
            color="grey",
            markeredgecolor="black",
            ls="none",
            label="selected epoch"
            + (f"s: {', '.join(selected)}" if len(selected) > 1 else f": {selected[0]}" if selected else ""),
        )
    ]
    if not selected:
        star = [Line2D([], [], color="none", label="final model kept (no epoch selection)")]
    sax.legend(handles=star, loc="upper right", fontsize=14)
    sax.set_xlabel(xlabel)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


def auc_text(aucs: Sequence[float]) -> str:
    """AUC of several trials in percent, mean ± sample std (as Table I): "75.6 ± 0.4 %" ("75.6 %" for one)."""
    agg = evaluation.aggregate(list(aucs))
    if agg["mean"] is None:
        return "n/a"
    std = "" if agg["std"] is None else f" ± {100 * agg['std']:.1f}"
    return f"{100 * agg['mean']:.1f}{std} %"


def roc_bands(
    runs: Sequence[tuple[str, bands.Band, Sequence[float]]],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    window: Sequence[float],
    n_trials: int,
) -> list[Path]:
    """ROC curves of several classifiers over repeated trainings: per run (label, band of the background
    efficiency on a grid of signal efficiencies, AUC of every trial) the mean over the trials as a line and
    the band between the lowest and highest trial filled, AUC mean ± std in the legend."""
    fig, ax, colors = _roc_axes()
    for i, (label, band, aucs) in enumerate(runs):
        color = colors[i % 10]
        ax.fill_between(band.x, band.lower, band.upper, color=color, alpha=0.25, lw=0)
        ax.plot(
            band.x,
            band.mean,
            lw=2,
            color=color,
            ls=("-", "--")[i // 10 % 2],
            label=f"{label} (AUC = {auc_text(aucs)})",
        )
    suffix = f"\nmean and min-max of {n_trials} trial{'s' if n_trials != 1 else ''}"
    return _roc_finish(fig, ax, stem, luminosity_fb, sqrt_s_tev, window, suffix)


def _band_plot(ax: plt.Axes, band: bands.Band, color: Any, label: str, **line: Any) -> bool:
    """Mean line and min-max band where some trial has a value; False (nothing drawn) where none has."""
    ok = band.defined
    if not ok.any():
        return False
    ax.fill_between(band.x[ok], band.lower[ok], band.upper[ok], color=color, alpha=0.25, lw=0)
    ax.plot(band.x[ok], band.mean[ok], color=color, label=label, **line)
    return True


def training_bands(
    histories: Sequence[History],
    stem: str | Path,
    luminosity_fb: float,
    sqrt_s_tev: float,
    title: str,
    xlabel: str = "Epoch",
) -> list[Path]:
    """Training curves of repeated trainings as bands: training and validation loss above, validation
    significance below, vs epoch; per epoch the mean over the trials that have a value there as a line and
    the lowest to highest trial filled. histories: as for `training_curves`, one per trial."""
    fig, ax, sax, colors = _training_axes()
    n = len(histories)
    train, val, z = (bands.history_band([(h[1], h[k]) for h in histories]) for k in (2, 3, 4))
    _band_plot(ax, train, colors[0], "training loss", lw=2)
    _band_plot(ax, val, colors[1], "validation loss", lw=1.5, ls="--", marker="o", ms=3)
    _band_plot(sax, z, colors[2], "validation significance", lw=1.5, marker="o", ms=4)
    ax.set_ylabel("Loss")
    losses = np.concatenate([np.r_[b.lower, b.upper] for b in (train, val)])
    losses = losses[np.isfinite(losses)]
    if losses.size:
        top, bottom = losses.max(), losses.min()
        pad = max(top - bottom, 1e-3)
        ax.set_ylim(bottom - 0.05 * pad, top + 0.7 * pad)
    ax.legend(
        loc="upper right",
        fontsize=14,
        title=f"{title}\nmean and min-max of {n} trial{'s' if n != 1 else ''}",
        title_fontsize=15,
    )
    sax.set_ylabel(r"Validation significance [$\sigma$]")
    zs = np.r_[z.lower, z.upper]
    zs = zs[np.isfinite(zs)]
    if zs.size:
        pad = max(np.ptp(zs), 1e-3)
        sax.set_ylim(zs.min() - 0.1 * pad, zs.max() + 0.6 * pad)
        sax.legend(loc="upper right", fontsize=14)
    sax.set_xlabel(xlabel)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


# ------------------------------------------------------------- attention models (hzg.results.interpret)
#: short token labels where the feature label is long
TOKEN_LABELS: dict[str, str] = {
    "lep_flavour": "flavour",
    # the candidate's object slots of the object models (hzg.data.objects.slot_names)
    "l1": r"$\ell_1$",
    "l2": r"$\ell_2$",
    "gamma": r"$\gamma$",
}
#: the further object slots, photon<k> (the k-th photon beyond the candidate's: gamma_{k+1}) and jet<k>
_EXTRA_SLOT = re.compile(r"^(photon|jet)([1-9][0-9]*)$")


def token_label(name: str) -> str:
    """Axis label of a token: the feature's label, shortened where long; an object slot's symbol; the class
    token as it is."""
    extra = _EXTRA_SLOT.match(name)
    if extra:
        kind, k = extra.group(1), int(extra.group(2))
        return rf"$\gamma_{{{k + 1}}}$" if kind == "photon" else rf"jet$_{{{k}}}$"
    return TOKEN_LABELS.get(name, LABELS.get(name, name))


def _attention_rows(block: AttentionBlock) -> list[tuple[str, np.ndarray, str, float, float]]:
    """(name, maps (heads, queries, keys), colour map, vmin, vmax) of signal, background and their
    difference; signal and background share one colour scale, the difference is symmetric."""
    top = float(max(block.signal.max(), block.background.max()))
    diff = block.signal - block.background
    reach = float(np.abs(diff).max()) or 1e-6
    return [
        ("Signal", block.signal, "viridis", 0.0, top),
        ("Background", block.background, "viridis", 0.0, top),
        ("Signal $-$ background", diff, "RdBu_r", -reach, reach),
    ]


def _token_ticks(ax: plt.Axes, xlabels: Sequence[str] | None, ylabels: Sequence[str] | None) -> None:
    """Tick labels of a heat map's columns (xlabels) and rows (ylabels); none where None."""
    for labels, set_ticks in ((xlabels, ax.set_xticks), (ylabels, ax.set_yticks)):
        n = len(labels) if labels is not None else 0
        set_ticks(np.arange(n), [token_label(t) for t in labels] if labels is not None else [], fontsize=10)
    ax.tick_params(axis="x", labelrotation=90)
    ax.tick_params(which="minor", bottom=False, top=False, left=False, right=False)


def _self_attention_panels(fig: plt.Figure, spec: Any, block: AttentionBlock) -> None:
    """Rows signal, background, difference by columns head: query x key heat maps, in gridspec cell `spec`."""
    n_heads = block.signal.shape[0]
    axes = np.array([[fig.add_subplot(c) for c in row] for row in _cells(spec, 3, n_heads)])
    for r, (name, maps, cmap, lo, hi) in enumerate(_attention_rows(block)):
        for h in range(n_heads):
            ax = axes[r, h]
            im = ax.imshow(maps[h], cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
            ax.set_title(f"{name}, head {h + 1}", fontsize=12)
            _token_ticks(ax, block.keys if r == 2 else None, block.queries if h == 0 else None)
        fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01).ax.tick_params(labelsize=10)


def _single_query_panels(fig: plt.Figure, spec: Any, block: AttentionBlock) -> None:
    """One query (a class token): head x key heat maps of signal, background and their difference."""
    n_heads = block.signal.shape[0]
    for cell, (name, maps, cmap, lo, hi) in zip(_cells(spec, 1, 3)[0], _attention_rows(block)):
        ax = fig.add_subplot(cell)
        im = ax.imshow(maps[:, 0, :], cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(f"{name}: {token_label(block.queries[0])} token attends to", fontsize=12)
        _token_ticks(ax, block.keys, [f"head {h + 1}" for h in range(n_heads)])
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.01).ax.tick_params(labelsize=10)


def _cells(spec: Any, rows: int, cols: int) -> list[list[Any]]:
    """A rows x cols grid of gridspec cells inside the cell `spec`."""
    grid = spec.subgridspec(rows, cols)
    return [[grid[r, c] for c in range(cols)] for r in range(rows)]


def _text_axis(fig: plt.Figure, spec: Any) -> plt.Axes:
    """An axis without frame or ticks, for text."""
    ax = fig.add_subplot(spec)
    ax.axis("off")
    return ax


def attention_maps(
    result: Interpretation, stem: str | Path, luminosity_fb: float, sqrt_s_tev: float, title: str
) -> list[Path]:
    """Mean attention maps of every block and head, signal, background and signal minus background (rows:
    the attending tokens, columns: the attended ones); a class token's single row is drawn per head."""
    hep.style.use("CMS")
    n_heads = result.blocks[0].signal.shape[0]
    heights = [0.6]
    for block in result.blocks:
        heights += [0.4, 12.0 if len(block.queries) > 1 else 0.45 * n_heads + 3.0]
    fig = plt.figure(figsize=(max(3.8 * n_heads, 15.0), sum(heights)), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = _text_axis(fig, grid[0])
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    ax.text(0.0, 0.0, f"{title}: mean attention weights, test split", fontsize=16, transform=ax.transAxes)
    for i, block in enumerate(result.blocks):
        _text_axis(fig, grid[1 + 2 * i]).text(0.5, 0.0, block.title, fontsize=16, ha="center")
        panels = _self_attention_panels if len(block.queries) > 1 else _single_query_panels
        panels(fig, grid[2 + 2 * i], block)
    return save(fig, stem)


def gradcam_bars(
    result: Interpretation, stem: str | Path, luminosity_fb: float, sqrt_s_tev: float, title: str
) -> list[Path]:
    """Grad-CAM-style attribution of every feature token (sums to 1), signal and background side by side."""
    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(12, 8))
    pos = np.arange(len(result.features))
    ax.bar(pos - 0.2, result.gradcam_signal, 0.4, color=SIGNAL_COLOR, label="Signal")
    ax.bar(pos + 0.2, result.gradcam_background, 0.4, color=BACKGROUND_COLOR, label="Background")
    ax.set_xticks(pos, [token_label(f) for f in result.features], rotation=60, ha="right", fontsize=15)
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    ax.set_ylabel("Grad-CAM attribution (sum 1)", fontsize=20)
    top = max(float(result.gradcam_signal.max()), float(result.gradcam_background.max()))
    ax.set_ylim(0, 1.35 * top)
    ax.legend(loc="upper right", fontsize=16, title=f"{title}, test split", title_fontsize=16)
    label_simulation(ax, luminosity_fb, sqrt_s_tev)
    return save(fig, stem)


# ------------------------------------------------------------- what the plots show (same code as the metrics)
def roc_of_test_split(frame: pd.DataFrame, window: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of the test split in the mass window along the curve: (bkg eff., sig eff., AUC)."""
    test = frame[frame["split"] == registry.TEST]
    s, m, w, y = (test[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    fpr, tpr = evaluation.window_roc(s, m, w, y, window)
    return fpr, tpr, evaluation.window_auc(s, m, w, y, window)


def overtraining_plot_data(frame: pd.DataFrame, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per class: the train and test histograms (sum w, sum w^2) of the overtraining test, its edges,
    p-value and residuals, with the weights `trial_metrics` uses."""
    frame = frame.assign(weight=evaluation.scaled_weights(frame))
    window, n_bins, method = cfg["window"], int(cfg["overtraining_bins"]), cfg["overtraining_test"]
    result = evaluation.overtraining(frame, window, n_bins, method)
    sel = metrics.in_window(frame["mllg"].to_numpy(), window)
    out = []
    for name, cls in (("signal", 1), ("background", 0)):
        part = frame[sel & (frame["is_signal"].to_numpy() == cls)]
        edges = np.asarray(result[name]["edges"])
        hists = {
            k: evaluation.histogram_w2(
                part.loc[part["split"] == sp, "score"].to_numpy(),
                part.loc[part["split"] == sp, "weight"].to_numpy(),
                edges,
            )
            for k, sp in (("train", registry.TRAIN), ("test", registry.TEST))
        }
        residuals = result[name].get("residuals", [math.nan] * n_bins)
        out.append(
            {
                "name": name.capitalize(),
                "edges": edges,
                **hists,
                "p_value": result[name]["p_value"],
                "residuals": residuals,
                "test_name": {"chi2_ww": r"$\chi^2$", "ks": "KS"}[method],
            }
        )
    return out


def sculpting_data(
    frame: pd.DataFrame, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, float, list[int]]:
    """Mass edges, normalised background shapes per score bin, their correlation and the number of background
    MC events per score bin, on the test split."""
    frame = frame.assign(weight=evaluation.scaled_weights(frame))
    test = frame[frame["split"] == registry.TEST]
    s, m, w, y = (test[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    edges, n_bins = evaluation.mass_edges(cfg["mass_bins"]), int(cfg["n_score_bins"])
    shapes = evaluation.background_mass_shapes(s, m, w, y, n_bins, edges)
    counts = np.bincount(evaluation.background_score_bins(s, w, y, n_bins), minlength=n_bins)
    return edges, shapes, evaluation.shape_correlation(shapes), [int(c) for c in counts]
