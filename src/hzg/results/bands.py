"""Repeated trainings as bands: per-trial curves on one common grid, and their lowest, highest and mean value
at every grid point (issue 14, item 3).

ROC curves go on a fixed grid of signal efficiencies (each trial's background efficiency interpolated
linearly along its curve); training histories go on the union of their epochs, where a trial that has no
value at an epoch (not evaluated there, or trained for fewer epochs) does not count at that epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: signal efficiencies of the ROC plots: 0, 0.002, ..., 1
SIGNAL_EFFICIENCY_GRID = np.linspace(0.0, 1.0, 501)


@dataclass(frozen=True)
class Band:
    """Curves of several trials on a common grid `x`: per point the lowest, highest and mean value over the
    trials that have one there (`n` of them; NaN where none has)."""

    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray
    n: np.ndarray

    @property
    def defined(self) -> np.ndarray:
        """Where at least one trial has a value."""
        return self.n > 0


def band(x: np.ndarray, values: np.ndarray) -> Band:
    """Band of `values` (one row per trial, one column per point of `x`), ignoring NaN: min, max and mean over
    the trials with a finite value at each point."""
    x = np.asarray(x, dtype=float)
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != x.size:
        raise ValueError(f"values have {values.shape[1]} points per trial, the grid {x.size}")
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    with warnings.catch_warnings():  # all-NaN columns: NaN, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        clean = np.where(finite, values, np.nan)
        return Band(x, np.nanmin(clean, axis=0), np.nanmax(clean, axis=0), np.nanmean(clean, axis=0), n)


def roc_band(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray = SIGNAL_EFFICIENCY_GRID
) -> Band:
    """Band of ROC curves, each (background efficiency, signal efficiency) along the curve with the signal
    efficiency non-decreasing (as sklearn's roc_curve gives it): every trial's background efficiency is
    interpolated linearly (np.interp) at the signal efficiencies `grid`, which become the band's x."""
    if not curves:
        raise ValueError("no ROC curve")
    grid = np.asarray(grid, dtype=float)
    rows = []
    for fpr, tpr in curves:
        fpr, tpr = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
        if fpr.shape != tpr.shape or fpr.size < 2:
            raise ValueError("a ROC curve needs as many background as signal efficiencies, at least 2")
        if np.any(np.diff(tpr) < 0):
            raise ValueError("signal efficiency must not decrease along a ROC curve")
        rows.append(np.interp(grid, tpr, fpr))
    return band(grid, np.array(rows))


def history_band(histories: Sequence[tuple[np.ndarray, np.ndarray]]) -> Band:
    """Band of per-epoch histories, each (epochs, values) of one trial, on the union of their epochs: NaN
    values and epochs a trial lacks are left out of that epoch's min, max and mean."""
    if not histories:
        raise ValueError("no history")
    epochs = np.unique(np.concatenate([np.asarray(e, dtype=float) for e, _ in histories]))
    rows = np.full((len(histories), epochs.size), np.nan)
    for row, (epoch, values) in zip(rows, histories):
        epoch, values = np.asarray(epoch, dtype=float), np.asarray(values, dtype=float)
        if epoch.shape != values.shape:
            raise ValueError("a history needs one value per epoch")
        if np.unique(epoch).size != epoch.size:
            raise ValueError("an epoch appears twice in one history")
        row[np.searchsorted(epochs, epoch)] = values
    return band(epochs, rows)
