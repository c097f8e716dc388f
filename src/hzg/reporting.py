"""Summary tables across runs: the fit results beside the binned-counting significance."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _interval(block: Mapping[str, Any]) -> str:
    return f"{block['mu_hat']:.2f} +{block['err_up']:.2f} -{block['err_down']:.2f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def fit_table(fits: Mapping[str, Mapping[str, Any]], metrics: Mapping[str, Mapping[str, Any]], trial: int) -> pd.DataFrame:
    """One row per run: mu-hat with its profile-likelihood interval, expected significance and 95 % CL limit,
    stat-only and with systematics, and the binned-counting significance of the same trial's test split."""
    rows = []
    for run, result in fits.items():
        stat, syst = result["stat_only"], result["with_systematics"]
        counting = next(t["significance"] for t in metrics[run]["trials"] if t["trial"] == trial)
        rows.append({
            "Run": run,
            "mu (stat. only)": _interval(stat),
            "mu (with syst.)": _interval(syst),
            "Z fit, stat. only": _rounded(stat["significance"]),
            "Z fit, with syst.": _rounded(syst["significance"]),
            "95% CL limit on mu, stat. only": _rounded(stat["upper_limit"]),
            "95% CL limit on mu, with syst.": _rounded(syst["upper_limit"]),
            "Z binned counting": _rounded(counting),
        })
    return pd.DataFrame(rows)
