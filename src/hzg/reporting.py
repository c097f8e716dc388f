"""Summary tables across runs: the fit results beside the binned-counting significance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _interval(block: Mapping[str, Any]) -> str:
    if block.get("err_up") is None or block.get("err_down") is None:
        return f"{block['mu_hat']:.2f} (no interval)"
    mc = f" +-{block['err_mc_stat']:.2f} (MC stat.)" if block.get("err_mc_stat") is not None else ""
    return f"{block['mu_hat']:.2f} +{block['err_up']:.2f} -{block['err_down']:.2f}{mc}"


def _expected(block: Mapping[str, Any]) -> float | None:
    """The pre-fit expected Z (model's Asimov at mu = 1, nominal nuisances), else pyhf's expected one."""
    prefit = block.get("expected_significance_prefit")
    return block["expected_significance"] if prefit is None else prefit


def _ratio(a: float | None, b: float | None) -> str | None:
    """a / b with two decimals, as text (the tables' number format has one)."""
    return None if a is None or not b else f"{a / b:.2f}"


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _stat_syst(stat: Mapping[str, Any], syst: Mapping[str, Any]) -> str:
    """mu-hat (with systematics) +- stat. +- syst., the systematic part sqrt(total^2 - stat^2) per side."""
    if any(b.get(k) is None for b in (stat, syst) for k in ("err_up", "err_down")):
        return _interval(syst)
    parts = [(stat[k], (max(syst[k] ** 2 - stat[k] ** 2, 0.0)) ** 0.5) for k in ("err_up", "err_down")]
    return (
        f"{syst['mu_hat']:.2f} +{parts[0][0]:.2f}/-{parts[1][0]:.2f} (stat.) "
        f"+{parts[0][1]:.2f}/-{parts[1][1]:.2f} (syst.)"
        + (f" +-{syst['err_mc_stat']:.2f} (MC stat.)" if syst.get("err_mc_stat") is not None else "")
    )


def spurious_summary(categories: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per run: sum of |S_spur| over the fitted categories, the largest |S_spur| / sigma_S, the categories that
    fail the criterion and those left out of the fit."""
    kept = {c: i for c, i in categories.items() if not i.get("dropped")}
    ratios = [abs(i["ratio"]) for i in kept.values() if i.get("ratio") is not None]
    return {
        "sum_abs": sum(abs(i["spurious_signal"]) for i in kept.values()),
        "sum_zeta": sum(i.get("spurious_systematic", abs(i["spurious_signal"])) for i in kept.values()),
        "max_ratio": max(ratios) if ratios else None,
        "failing": [c for c, i in kept.items() if not i["passes"]],
        "mc_limited": [c for c, i in kept.items() if i.get("mc_limited")],
        "dropped": [c for c, i in categories.items() if i.get("dropped")],
    }


def fit_table(
    fits: Mapping[str, Mapping[str, Any]], metrics: Mapping[str, Mapping[str, Any]], trial: int
) -> pd.DataFrame:
    """One row per run: mu-hat with its MINOS interval (stat. only, and split into stat. and syst.) and its
    MC-statistical error (the MC is the data), its distance from 1 in units of the total error, the
    discovery significance on the MC as data ("Z fit": its background's deviation from the smooth function,
    the spurious signal, counts as signal there) and on the model's own pre-fit Asimov data at mu = 1 ("Z
    expected", nominal nuisances; pyhf's post-fit one where absent), the expected 95 % CL limit, the
    spurious signal (sum of
    |S_spur| and of its systematic zeta over categories, largest |S_spur| / sigma_S, categories failing the
    criterion and those where the MC cannot resolve sigma_S, "MC-limited"), the fit's
    problems (flags), and the binned-counting significance of the same trial's test split with the ratio of
    the expected (stat.-only) Z to it."""
    rows = []
    for run, result in fits.items():
        stat, syst = result["stat_only"], result["with_systematics"]
        counting = next(t["significance"] for t in metrics[run]["trials"] if t["trial"] == trial)
        spur = spurious_summary(result.get("categories", {}))
        problems = [
            f"{name}: {p}" for name, block in (("stat", stat), ("syst", syst)) for p in block["problems"]
        ]
        problems += [
            f"limit ({name}): {block['limit_note']}"
            for name, block in (("stat", stat), ("syst", syst))
            if block.get("limit_note")
        ]
        if spur["dropped"]:
            problems.append("left out (too few background MC events): " + ", ".join(spur["dropped"]))
        rows.append(
            {
                "Run": run,
                "mu (stat. only)": _interval(stat),
                "mu (stat. + syst.)": _stat_syst(stat, syst),
                "Z fit, stat. only": _rounded(stat["significance"]),
                "Z fit, with syst.": _rounded(syst["significance"]),
                "Z expected, stat. only": _rounded(_expected(stat)),
                "Z expected, with syst.": _rounded(_expected(syst)),
                "Z binned counting": _rounded(counting),
                "Z expected stat. only / Z counting": _ratio(_expected(stat), counting),
                "(mu - 1) / total error, stat. only": _rounded(stat.get("pull_from_1"), 2),
                "95% CL limit on mu, stat. only": _rounded(stat["upper_limit"]),
                "95% CL limit on mu, with syst.": _rounded(syst["upper_limit"]),
                "Median expected limit, with syst.": _rounded((syst.get("limit_band") or [None] * 5)[2]),
                "Sum |S_spur| (events)": _rounded(spur["sum_abs"], 1),
                "Sum zeta (events, the syst.)": _rounded(spur["sum_zeta"], 1),
                "Max |S_spur|/sigma_S": _rounded(spur["max_ratio"], 2),
                "Categories failing spurious criterion": ", ".join(spur["failing"]) or "none",
                "MC-limited categories (dS_MC > sigma_S)": ", ".join(spur["mc_limited"]) or "none",
                "Fit problems": "; ".join(problems) or "none",
            }
        )
    return pd.DataFrame(rows)


def spurious_table(fits: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (run, category): the chosen background function, its F-test order, the spurious signal with
    its MC error, sigma_S, their ratio and whether it passes, the signal-free yield and the MC behind it."""
    rows = []
    for run, result in fits.items():
        for cat, info in result.get("categories", {}).items():
            if info.get("dropped"):
                rows.append({"Run": run, "Category": cat, "Function": f"left out: {info['reason']}"})
                continue
            rows.append(
                {
                    "Run": run,
                    "Category": cat,
                    "Function": info["function"]
                    + (
                        f" (shape pooled with {', '.join(info['pooled_with'])})"
                        if info["pooled_with"]
                        else ""
                    ),
                    "Parameters": info["n_parameters"],
                    "F-test order": info["f_test"]["order"],
                    "S_spur (events)": _rounded(info["spurious_signal"], 2),
                    "MC error": _rounded(info["spurious_signal_mc_error"] * info["scale"], 2),
                    "sigma_S": _rounded(info["sigma_signal"] * info["scale"], 2),
                    "S_spur/sigma_S": _rounded(info["ratio"], 2),
                    "zeta (events, the syst.)": _rounded(info.get("spurious_systematic"), 2),
                    "Passes": "yes" if info["passes"] else "no",
                    "MC-limited": "yes (dS_MC > sigma_S)" if info.get("mc_limited") else "no",
                    "chi2 p": _rounded(info.get("gof_p"), 3),
                    "Background MC events": info["background_mc_events"],
                    "Effective MC events": _rounded(info["effective_mc_events"], 0),
                }
            )
    return pd.DataFrame(rows)
