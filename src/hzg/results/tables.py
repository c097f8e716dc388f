"""Every table of the analysis, and writing them as Markdown, CSV and LaTeX (atomically).

Cutflow and normalisation tables, Table I, and the fit summary tables (the fit results beside the
binned-counting significance).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hzg import io, metrics
from hzg.data import samples
from hzg.registry import LOSS_KINDS, MODEL_LABELS, RANDOM, TREE_MODELS, loss_label


def write_table(frame: pd.DataFrame, stem: str | Path, caption: str = "", note: str = "") -> list[Path]:
    """Write `frame` to stem.md, stem.csv and stem.tex; return the paths. `note` goes under the table in the
    Markdown and LaTeX versions (the CSV holds the cells only)."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".md", ".csv", ".tex")]
    with io.atomic_path(paths[0]) as tmp:
        # text cells stay as written (tabulate would reformat "0.04" with floatfmt to "0.0")
        text_columns = [i for i, dtype in enumerate(frame.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
        md = frame.to_markdown(index=False, floatfmt=".1f", disable_numparse=text_columns or False)
        tmp.write_text(
            (f"**{caption}**\n\n" if caption else "") + md + "\n" + (f"\n{note}\n" if note else "")
        )
    with io.atomic_path(paths[1]) as tmp:
        frame.to_csv(tmp, index=False)
    with io.atomic_path(paths[2]) as tmp:
        latex = frame.to_latex(index=False, caption=caption or None, escape=True)
        if note:
            text = _latex_escape(note)
            latex = (
                latex.replace("\\end{table}", f"\\par\\footnotesize {text}\n\\end{{table}}")
                if "\\end{table}" in latex
                else latex + f"\n{text}\n"
            )
        tmp.write_text(latex)
    return paths


def _latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (one pass, so replacements are not escaped again)."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def rst_escape(text: str) -> str:
    """Plain text for a reStructuredText caption (a Snakemake report's): RST's inline markup characters
    backslash-escaped, so that "|S_spur|" is not a substitution, "`" no literal and "*" no emphasis."""
    return re.sub(r"[\\`*_|]", lambda m: "\\" + m.group(), text)


def cutflow_frame(
    flows: Mapping[str, Sequence[Mapping[str, float]]], yields_per_weight: Mapping[str, float]
) -> pd.DataFrame:
    """One row per cut; per sample raw events, expected events (weighted) and efficiency."""
    cuts = [row["cut"] for row in next(iter(flows.values()))]
    frame = pd.DataFrame({"cut": cuts})
    for sample, rows in flows.items():
        n = [row["n_raw"] for row in rows]
        frame[f"{sample} raw"] = n
        frame[f"{sample} expected"] = [
            round(row["sum_weights"] * yields_per_weight[sample], 2) for row in rows
        ]
        w = [row["sum_weights"] for row in rows]
        # weighted: with a biased generation the raw fraction is not the efficiency
        frame[f"{sample} eff. [%]"] = [round(100.0 * k / w[0], 2) if w[0] else float("nan") for k in w]
    return frame


def normalisation_frame(
    records: Mapping[str, Sequence[Mapping[str, float]]],
    xsec_used: Mapping[str, float],
    normalisation: Mapping[str, Mapping[str, float]],
    luminosity_fb: float,
) -> pd.DataFrame:
    """Per sample: generated events, the generator's cross-section of what was generated, the one used and
    why."""
    rows = []
    for sample, recs in records.items():
        n_gen = sum(r["n_generated"] for r in recs)
        gen = samples.generator_xsec_pb(recs)
        norm = normalisation[sample]
        how = f"{norm['k_factor']:g} x generator" if "k_factor" in norm else "xsec_pb from the config"
        selected = sum(r["cutflow"][-1]["sum_weights"] for r in recs) / sum(r["sum_weights"] for r in recs)
        rows.append(
            {
                "sample": sample,
                "generated events": int(n_gen),
                "generator sigma [pb]": f"{gen:.4g}" if gen is not None else "N.A.",
                "sigma used [pb]": f"{xsec_used[sample]:.4g}",
                "how": how,
                "selected fraction [%]": round(100.0 * selected, 2),
                f"selected expected ({luminosity_fb:g}/fb)": round(
                    xsec_used[sample] * 1000.0 * luminosity_fb * selected, 1
                ),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- fit summary tables
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
    """Per run: sum of |S_spur| over the fitted categories, the largest |S_spur| / sigma_S, the categories
    that fail the criterion and those left out of the fit."""
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


#: caption of `fit_table`: what the fit's data are
FIT_CAPTION = (
    "Binned profile-likelihood fit of mllg per score category, the weighted MC (signal + background, "
    "mu = 1) as data"
)


def fit_table_note(trial: int, criterion: float, tolerance: float) -> str:
    """The note under the fit table: every column by its name, and why "Z fit" is not the analysis'
    sensitivity. `criterion` and `tolerance`: the spurious-signal criterion and its MC tolerance (config
    `fit.background.spurious_criterion`, `spurious_mc_tolerance`)."""
    return (
        f"Trial {trial}'s models on its test split, weights scaled to sigma x L; the data are the weighted "
        "MC (signal + background, mu = 1); the background of each category is the template of a smooth "
        "function fitted to its background MC (F-test and spurious-signal test), its normalisation free. "
        "mu (stat. only): mu-hat with its MINOS interval and, +-, its MC-statistical error: how far mu-hat "
        "would move over independent background MC samples of this size, since the MC's fluctuations about "
        "the smooth function under the peak count as signal (real data have no such term). "
        "mu (stat. + syst.): the fit with the systematics (luminosity, signal cross-section, signal MC "
        "statistics, spurious signal, photon energy scale and resolution), its error split into stat. and "
        "syst. = sqrt(total^2 - stat.^2) per side. "
        "Z fit, stat. only and Z fit, with syst.: the discovery significance (q0, asymptotic) on the MC as "
        "data; the MC's deviations from the smooth functions add to it, so it is not the analysis' "
        "sensitivity. "
        "Z expected, stat. only and Z expected, with syst.: q0 on the model's own Asimov data at mu = 1, "
        "nuisance parameters nominal: the expected significance of the analysis (pyhf's post-fit expected "
        "one where that fit failed). "
        "Z binned counting: Table I's significance of the same trial (Asimov Z per equal-signal score bin "
        "in its 5-95 % signal mass window, in quadrature); Z expected stat. only / Z counting: what the mllg "
        "shape adds to the counting. "
        "(mu - 1) / total error, stat. only: mu-hat's distance from the true 1 in units of its error towards "
        "1 and the MC-statistical error in quadrature (a standard normal number for an unbiased fit). "
        "95% CL limit on mu, stat. only and 95% CL limit on mu, with syst.: CLs (q-tilde, asymptotic) with "
        "the background-only MC as data, an expected limit that carries this MC's fluctuations; "
        "Median expected limit, with syst.: the median of the background-only expectation. "
        "Sum |S_spur| (events): the spurious signal summed over categories (the signal yield that a fit of "
        "signal shape + chosen function finds in the background MC alone); Sum zeta (events, the syst.): "
        f"the spurious-signal systematic the fit uses, zeta = max(0, |S_spur| - {tolerance:g} dS_MC) per "
        "category (dS_MC: the MC-statistical error of S_spur); Max |S_spur|/sigma_S: the largest ratio to "
        "sigma_S, the statistical error of the signal yield expected from the background; Categories "
        f"failing spurious criterion: no function passes zeta < {criterion:g} sigma_S; MC-limited "
        "categories (dS_MC > sigma_S): the background MC cannot resolve a bias of the size of sigma_S. "
        "Fit problems: every warning sign of the fits (fallback optimiser, Hessian not positive definite, "
        "interval or parameter at a bound, failed limit scan, categories left out)."
    )


def spurious_caption(criterion: float, tolerance: float) -> str:
    """Caption of `spurious_table`, with the criterion of the config."""
    return (
        "Background function and spurious signal per category (ATLAS relaxed criterion zeta = max(0, "
        f"|S_spur| - {tolerance:g} dS_MC) < {criterion:g} sigma_S; MC-limited: dS_MC > sigma_S)"
    )


#: the note under `spurious_table`: every column
SPURIOUS_NOTE = (
    "Per run (the fit's trial) and score category. Function: the background function chosen (the "
    "fewest-parameter one that passes the criterion and describes the MC, else the passing one that "
    "describes it best, else the one with the smallest |S_spur|/sigma_S), or why the category is left out; "
    "Parameters: its free parameters; F-test order: the Bernstein order the F-test reached. "
    "S_spur (events): the signal yield fitted to the background MC alone with that function (expected events "
    "for the luminosity); MC error: its MC-statistical error dS_MC (sandwich, each bin's sum of w^2); "
    "sigma_S: the statistical error of the signal yield expected from the background; S_spur/sigma_S: their "
    "ratio; zeta (events, the syst.): the spurious-signal systematic in the fit; Passes: zeta below the "
    "criterion; MC-limited: dS_MC > sigma_S, the MC cannot resolve a bias of that size; chi2 p: the "
    "function's goodness of fit to the background MC; Background MC events and Effective MC events: raw "
    "and (sum w)^2 / sum w^2 in the category's fit window."
)


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


# ---------------------------------------------------------------- physics checks
#: caption and note of `physics_checks_frame`
PHYSICS_CHECKS_CAPTION = "Physics checks of the selected samples against the paper and the expectation"
PHYSICS_CHECKS_NOTE = (
    "Signal peak and width: the Gaussian core of the selected signal's mllg (weighted moments iterated "
    "within +-2 sigma, 115-135 GeV). Selection fraction: selected over generated events, generator-weighted, "
    "every chunk; the paper's from its 45 M generated events per sample (9 M signal, 5 M background "
    "selected). Background falling: weighted background events at 100-120 over 160-180 GeV. sigma_m pull "
    "width: the 16-84 % half-width of the signal's (mllg - 125 GeV) / sigma_m, 1 for a calibrated per-event "
    "mass resolution, before and after the resolution map's calibration. Every number is in "
    "results/checks/physics.json."
)


def physics_checks_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The physics checks of `hzg.data.checks.physics_summary` as a table: check, this run's value and the
    reference (the paper's selection fractions for the samples it has, else none)."""
    rows = [
        ("Signal mllg peak [GeV]", f"{summary['signal_peak_gev']:.2f}", "125 (generated m_H)"),
        ("Signal mllg width, Gaussian core [GeV]", f"{summary['signal_width_gev']:.2f}", ""),
    ]
    paper = summary.get("paper_selection_fraction", {})
    for sample, fraction in summary["selection_fraction"].items():
        ref = paper.get(sample)
        rows.append(
            (
                f"Selection fraction, {sample} [%]",
                f"{100 * fraction:.1f}",
                "" if ref is None else f"{100 * ref:.1f} (paper)",
            )
        )
    rows.append(
        ("Background falling: 100-120 / 160-180 GeV", f"{summary['background_low_over_high']:.2f}", "> 1")
    )
    pulls = summary.get("sigma_m_pull", {})
    if pulls.get("calibrated"):
        for stage in ("before", "after"):
            rows.append(
                (f"sigma_m pull width, {stage} calibration", f"{pulls['pull_width_all'][stage]:.3f}", "1")
            )
    return pd.DataFrame(rows, columns=["Check", "This run", "Reference"])


# ---------------------------------------------------------------- mean ± std
LOW_MC_MARK = "†"


def format_mean_std(stat: Mapping[str, float | None], digits: int, scale: float = 1.0) -> str:
    """'mean ± std' with `digits` decimals ('N.A.' when there is no value, the mean alone for one trial),
    followed by '(n/N)' when only n of the N trials have a value: '1.52 ± 0.10 (2/3)'."""
    if stat["mean"] is None:
        return "N.A."
    text = f"{stat['mean'] * scale:.{digits}f}"
    text = text if stat["std"] is None else f"{text} ± {stat['std'] * scale:.{digits}f}"
    return text + (f" ({stat['n']}/{stat['n_trials']})" if partial(stat) else "")


def partial(stat: Mapping[str, Any]) -> bool:
    """Whether a summary statistic averages fewer trials than there are."""
    return stat.get("n") is not None and stat.get("n_trials") is not None and 0 < stat["n"] < stat["n_trials"]


# ---------------------------------------------------------------- Table I
TABLE_COLUMNS = (
    "Technique",
    "Loss",
    "Signi.",
    "Signi. MC stat.",
    "AUC (%)",
    "Bkg. Corr. (1e-3)",
    "Bkg. Corr. floor (1e-3)",
    "Bkg. Corr. above noise (1e-3)",
    "Bkg. dCor² (1e-3)",
    "Bkg. MC per bin, min (raw / eff.)",
    "Best epoch",
    "Overtraining p-value",
)
_NONE: Mapping[str, Any] = {"mean": None, "std": None}


def paper_order(model: str, loss: Mapping[str, Any] | None) -> tuple[int, int, int]:
    """Sort key of Table I: Random, trees, networks without DisCo, networks with DisCo; FNN, DFNN, ETN; BCE,
    Ext."""
    ranks = list(MODEL_LABELS)
    model_rank = ranks.index(model) if model in ranks else len(ranks)
    if loss is None or model in (RANDOM, *TREE_MODELS):
        return (0, model_rank, 0)
    disco = int(float(loss["disco_lambda"]) > 0)
    return (1 + disco, model_rank, LOSS_KINDS.index(loss["kind"]) if loss["kind"] in LOSS_KINDS else 9)


def low_background_mc(summary: Mapping[str, Any]) -> bool:
    """Whether some trial of a metrics.json summary has a score bin with too few background MC events."""
    return bool(summary.get("background_mc", {}).get("low_trials"))


def _mc_per_bin(background_mc: Mapping[str, Any]) -> str:
    """ "raw / effective" fewest background MC events in a score bin's mass window over the trials."""
    raw, eff = background_mc.get("min_count"), background_mc.get("min_effective")
    if raw is None:
        return "N.A."
    return f"{raw} / {eff:.0f}" if eff is not None else str(raw)


def table_row(
    model: str, loss: Mapping[str, Any] | None, summary: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """One row of Table I from a metrics.json summary: "Signi." is mean ± std over trials, marked with a
    dagger when a trial has a score bin with fewer than min_background_mc background MC events in its mass
    window; "Signi. MC stat." is the mean over trials of the significance's MC-statistical uncertainty."""
    mc_err = summary.get("significance_mc_err", {}).get("mean")
    mark = f" {LOW_MC_MARK}" if low_background_mc(summary) else ""
    return {
        "Technique": MODEL_LABELS.get(model, model),
        "Loss": loss_label(model, loss),
        "Signi.": format_mean_std(summary["significance"], 2) + mark,
        "Signi. MC stat.": "N.A." if mc_err is None else f"{mc_err:.2f}",
        "AUC (%)": format_mean_std(summary["auc"], 1, scale=100.0),
        "Bkg. Corr. (1e-3)": format_mean_std(summary["bkg_correlation"], 1, scale=1e3),
        "Bkg. Corr. floor (1e-3)": format_mean_std(summary.get("bkg_correlation_floor", _NONE), 1, scale=1e3),
        "Bkg. Corr. above noise (1e-3)": format_mean_std(
            summary.get("bkg_correlation_excess", _NONE), 1, scale=1e3
        ),
        "Bkg. dCor² (1e-3)": format_mean_std(summary.get("bkg_dcor2", _NONE), 1, scale=1e3),
        "Bkg. MC per bin, min (raw / eff.)": _mc_per_bin(summary.get("background_mc", {})),
        "Best epoch": format_mean_std(summary["best_epoch"], 0),
        "Overtraining p-value": format_mean_std(summary["overtraining_p"], 2),
    }


def table_one(results: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any]]]) -> pd.DataFrame:
    """Table I: one row per (model, loss spec, metrics.json), in the paper's order."""
    ordered = sorted(results, key=lambda r: paper_order(r[0], r[1]))
    return pd.DataFrame(
        [table_row(m, loss, res["summary"]) for m, loss, res in ordered], columns=list(TABLE_COLUMNS)
    )


#: Table I's columns but Technique and Loss, defined: under its Markdown and LaTeX (`table_note`) and in the
#: report's caption (workflow/report/table1.rst renders it from rule table_one's params)
TABLE_ONE_COLUMNS = (
    "Signi.: the expected significance, Asimov Z in the 5-95 % signal mass window of each equal-signal "
    "score bin, the bins in quadrature; mean ± std over trials; Signi. MC stat.: mean over trials of its "
    "MC-statistical uncertainty (sum of w² of s and b per score bin, propagated as in the paper's code). "
    "AUC: area under the weighted ROC curve in the evaluation window (config evaluation.window; negative "
    "weights set to 0), in %. "
    "Bkg. Corr.: the paper's background mℓℓγ correlation, the standard deviation across the score bins "
    "of the normalised background mℓℓγ histograms, averaged over mass bins (in 1e-3, as every Bkg. "
    "column but the MC counts). "
    "Bkg. Corr. floor: the value of "
    "Bkg. Corr. for a classifier that does not sculpt the background, with this run's background MC (its "
    "mass and weight shuffled among the background events); only the part above it measures sculpting. "
    "Bkg. Corr. above noise: the same std with its expected MC-noise part subtracted in quadrature, per "
    "mass bin from the jackknife variance of each score bin's normalised histogram (root mean square over "
    "mass bins; negative: consistent with no sculpting). "
    "Bkg. dCor²: weighted squared distance correlation of score and mℓℓγ of the background, "
    "what DisCo lowers. "
    "Bkg. MC per bin, min: the fewest background MC events in a score bin's mass window over bins and "
    "trials, raw and effective ((Σw)²/Σw², what the MC-statistical precision follows). "
    "Best epoch: the epoch of highest validation significance (N.A. for trees and the random "
    "classifier). Overtraining p-value: train against test score distributions per class in the "
    "evaluation window, the two classes combined (the χ² test for weighted histograms of ROOT's "
    'Chi2Test "WW", χ² and ndf added; or Kolmogorov-Smirnov with Fisher\'s method: config '
    "evaluation.overtraining_test)."
)


#: the paper's Table I (arXiv:2401.00428, 3 trials): (Technique, Loss) as `table_row` labels them ->
#: (Signi., AUC in %, Bkg. Corr. in 1e-3); its best epochs (of 1200) do not compare with this grid's
PAPER_TABLE_ONE: dict[tuple[str, str], tuple[float, float, float]] = {
    ("Random", "N.A."): (0.50, 50.0, 0.0),
    ("BDT", "N.A."): (1.17, 75.6, 3.3),
    ("XGBoost", "N.A."): (1.49, 75.8, 2.7),
    ("FNN", "BCE"): (1.43, 75.2, 2.8),
    ("FNN", "Ext"): (1.45, 75.4, 2.7),
    ("DFNN", "BCE"): (1.50, 76.0, 2.0),
    ("DFNN", "Ext"): (1.46, 75.7, 2.0),
    ("ETN", "BCE"): (1.51, 76.2, 2.3),
    ("ETN", "Ext"): (1.48, 75.7, 2.3),
    ("FNN", "BCE+DisCo"): (1.35, 75.0, 0.7),
    ("FNN", "Ext+DisCo"): (1.46, 74.7, 0.8),
    ("DFNN", "BCE+DisCo"): (1.46, 75.1, 1.0),
    ("DFNN", "Ext+DisCo"): (1.47, 75.7, 1.0),
    ("ETN", "BCE+DisCo"): (1.52, 75.6, 1.0),
    ("ETN", "Ext+DisCo"): (1.50, 75.4, 1.0),
}
PAPER_COLUMNS = (
    "Technique",
    "Loss",
    "Signi.",
    "Signi., paper",
    "Signi. / paper",
    "AUC (%)",
    "AUC (%), paper",
    "Bkg. Corr. (1e-3)",
    "Bkg. Corr. above noise (1e-3)",
    "Bkg. Corr. (1e-3), paper",
    "Bkg. Corr. DisCo / BCE",
    "Bkg. Corr. DisCo / BCE, above noise",
    "Bkg. Corr. DisCo / BCE, paper",
)
PAPER_CAPTION = "Table I beside the paper's (arXiv:2401.00428, Table I)"
PAPER_NOTE = (
    "Signi., AUC (%), Bkg. Corr. (1e-3) and Bkg. Corr. above noise (1e-3): this run's, as in Table I (mean ± "
    "std over trials). Signi., paper, AUC (%), paper and Bkg. Corr. (1e-3), paper: the paper's Table I, 3 "
    "trials of 45 M + 45 M generated events (9 M signal, 5 M background selected), trained 1200 epochs at "
    "batch 8192; N.A.: not in the paper's grid. Signi. / paper: the ratio of the means (the gap is the "
    "background sample's recoil, not the training: README, docs/physics.md). Our Bkg. Corr. carries an "
    "MC-noise floor from the finite background MC (Table I's floor column), which the paper's 5 M selected "
    "background events make negligible: the paper's value compares with Bkg. Corr. above noise. "
    "Bkg. Corr. DisCo / BCE: a DisCo row's correlation over that of the same technique and classifier loss "
    "without DisCo, the decorrelation DisCo buys, raw (the floor in both terms pulls it towards 1); "
    "Bkg. Corr. DisCo / BCE, above noise: the same of the correlation above noise, the one to read against "
    "Bkg. Corr. DisCo / BCE, paper."
)


def _mean(summary: Mapping[str, Any], key: str) -> float | None:
    return (summary.get(key) or {}).get("mean")


def _disco_ratio(
    label: tuple[str, str], mine: float | None, corr: Mapping[tuple[str, str], float | None]
) -> str:
    """A DisCo row's correlation `mine` over that of its technique with the same classifier loss without
    DisCo (`corr`, by label): "" for a row without DisCo, N.A. where either is missing or not unique, or the
    one without DisCo is not above 0."""
    technique, loss = label
    if not loss.endswith("+DisCo"):
        return ""
    base = corr.get((technique, loss.removesuffix("+DisCo")))
    return "N.A." if base is None or mine is None or base <= 0 else f"{mine / base:.2f}"


def _unique_by_label(
    pairs: Sequence[tuple[tuple[str, str], float | None]],
) -> dict[tuple[str, str], float | None]:
    """{label: value}; a label two runs share (two DisCo strengths, say) maps to None: no unique value."""
    out: dict[tuple[str, str], float | None] = {}
    for label, value in pairs:
        out[label] = None if label in out else value
    return out


def paper_comparison(
    results: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any]]],
) -> pd.DataFrame:
    """Table I's rows (`table_one`'s order, one per run) beside the paper's Table I (`PAPER_TABLE_ONE`):
    significance, AUC, background correlation (raw and above noise against the paper's) and DisCo's
    decorrelation."""
    ordered = sorted(results, key=lambda r: paper_order(r[0], r[1]))
    # Table I's own cells (`table_row`), the significance without its dagger
    rows_in = []  # (label, Table I's cells, summary) per run
    for m, loss, res in ordered:
        cells = table_row(m, loss, res["summary"])
        rows_in.append(((cells["Technique"], cells["Loss"]), cells, res["summary"]))
    raw = _unique_by_label([(label, _mean(s, "bkg_correlation")) for label, _, s in rows_in])
    excess = _unique_by_label([(label, _mean(s, "bkg_correlation_excess")) for label, _, s in rows_in])
    paper_corr = {label: corr for label, (_, _, corr) in PAPER_TABLE_ONE.items()}
    rows = []
    for label, cells, summary in rows_in:
        paper = PAPER_TABLE_ONE.get(label)
        signi = _mean(summary, "significance")
        rows.append(
            {
                **{k: cells[k] for k in ("Technique", "Loss", "AUC (%)", "Bkg. Corr. (1e-3)")},
                "Signi.": format_mean_std(summary["significance"], 2),
                "Signi., paper": "N.A." if paper is None else f"{paper[0]:.2f}",
                "Signi. / paper": "N.A." if paper is None or signi is None else f"{signi / paper[0]:.2f}",
                "AUC (%), paper": "N.A." if paper is None else f"{paper[1]:.1f}",
                "Bkg. Corr. above noise (1e-3)": cells["Bkg. Corr. above noise (1e-3)"],
                "Bkg. Corr. (1e-3), paper": "N.A." if paper is None else f"{paper[2]:.1f}",
                "Bkg. Corr. DisCo / BCE": _disco_ratio(label, _mean(summary, "bkg_correlation"), raw),
                "Bkg. Corr. DisCo / BCE, above noise": _disco_ratio(
                    label, _mean(summary, "bkg_correlation_excess"), excess
                ),
                "Bkg. Corr. DisCo / BCE, paper": _disco_ratio(label, paper and paper[2], paper_corr),
            }
        )
    return pd.DataFrame(rows, columns=list(PAPER_COLUMNS))


def table_note(results: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any]]]) -> str:
    """The note under Table I: every column but Technique and Loss, and, where used, what "(n/N)" and the
    dagger mean."""
    note = TABLE_ONE_COLUMNS
    if any(
        partial(stat)
        for _, _, res in results
        for stat in res["summary"].values()
        if isinstance(stat, Mapping)
    ):
        note += (
            " (n/N): the mean and std are over the n of N trials where the metric has a value "
            "(the others give "
            "NaN, e.g. a score bin without background; the evaluation log names them)."
        )
    marked = [res["summary"] for _, _, res in results if low_background_mc(res["summary"])]
    if marked:
        threshold = marked[0].get("background_mc", {}).get("threshold", metrics.MIN_BACKGROUND_MC)
        fewest = min(s["background_mc"]["min_count"] for s in marked)
        note += (
            f" {LOW_MC_MARK}: in at least one trial a score bin's mass window holds fewer than {threshold} "
            f"background MC events (fewest: {fewest}); that significance rests on few simulated events."
        )
    return note
