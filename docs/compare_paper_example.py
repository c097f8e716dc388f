"""The default's samples and classifiers against the paper authors' public example and trained ETN.

jaebak/EventClassifierTransformer (the paper's code) ships `data/example_data.root`, 4640 selected events of
the paper's own samples (tree `eval_full_tree`, 2929 signal and 1711 background, classID 1 = signal, the
paper's 15 ETN inputs and mllg), and `model_weights/EventClassifierTransformer_weights.pt`, a trained ETN on
those 15 inputs. This script prints

1. weighted quantiles (10, 50, 90, 99 %) of every input for signal and background, the paper's example against
   this workflow's feature files (100 < mllg < 180 GeV);
2. the paper's trained ETN applied to the paper's example and to this workflow's test splits (each trial): the
   binned significance of Table I with its MC-statistical uncertainty and the AUC in 120-130 GeV, both samples
   normalised to the paper's yields (208 signal, 851 k background events); and this workflow's test split
   drawn down to the example's size many times, to show how precisely the example can measure a significance;
   and, above the network's scores that keep 50, 25, 12.5 and 6 % of this workflow's signal, the signal and
   background efficiencies of both (where the top score bins' background differs).

3. with further LABEL=results arguments, docs/paper_example_recoil.png: the background's pT(llg)/mllg and pTt
   of the paper's example (points, Poisson errors) against each of those runs' background, normalised alike,
   with the chi2 of each against the example.
4. with --fsr-templates=RESULTS (a run with the Drell-Yan FSR samples, config/fsr.yaml): the fraction of the
   example's background that is Drell-Yan with a photon off a lepton, fitted with that run's qqbar -> Z gamma
   and FSR backgrounds as templates (hzg.results.composition) in each of mll, |cos theta|,
   min Delta R(l, gamma) and mllg, with the chi2 of the best fit and of the run's own FSR fraction.

Usage (the paper's code is not copied into this project; clone it anywhere):
    git clone https://github.com/jaebak/EventClassifierTransformer /tmp/ECT
    python docs/compare_paper_example.py /tmp/ECT results [LABEL=results ...] [--fsr-templates=RESULTS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import uproot
from scipy.stats import chi2
from sklearn.metrics import roc_auc_score

from hzg import metrics
from hzg.results.composition import template_fraction

# the paper's 15 inputs, their min-max normalisation (the authors' example code) and our column of each
PAPER_INPUTS = {
    "min_dR": ("min_dr_lg", (0.4, 3.7)),
    "max_dR": ("max_dr_lg", (0.4, 5.0)),
    "pt_mass": ("llg_pt_over_mllg", (0.0, 11.0)),
    "cosTheta": ("cos_Theta", (-1.0, 1.0)),
    "costheta": ("cos_theta", (-1.0, 1.0)),
    "llg_mass_err": ("sigma_m", (1.1, 3.4)),
    "phi": ("phi", (0.0, 6.3)),
    "photon_rapidity": ("photon_eta", (-2.5, 2.5)),
    "l1_rapidity": ("lep1_eta", (-2.5, 2.5)),
    "l2_rapidity": ("lep2_eta", (-2.5, 2.5)),
    "llg_flavor": ("lep_flavour", (0.0, 1.0)),
    "llg_ptt": ("llg_ptt", (0.0, 400.0)),
    "photon_pt_mass": ("photon_pt_over_mllg", (0.13, 2.0)),
    "lead_lep_pt": ("lep1_pt", (25.0, 1000.0)),
    "sublead_lep_pt": ("lep2_pt", (15.0, 500.0)),
}
PAPER_SIGNAL, PAPER_BACKGROUND = 208.0, 851e3
QUANTILES = (0.1, 0.5, 0.9, 0.99)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.asarray(metrics.weighted_quantile(values, weights, np.array(QUANTILES)))


def paper_etn(repo: Path) -> torch.nn.Module:
    sys.path.insert(0, str(repo))
    from EventClassifierTransformer import EventClassifierTransformerNetwork  # the authors' class

    net = EventClassifierTransformerNetwork(nvars=len(PAPER_INPUTS))
    net.load_state_dict(
        torch.load(repo / "model_weights/EventClassifierTransformer_weights.pt", map_location="cpu")
    )
    return net.eval()


def etn_scores(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    lo = np.array([r[0] for _, r in PAPER_INPUTS.values()], np.float32)
    hi = np.array([r[1] for _, r in PAPER_INPUTS.values()], np.float32)
    with torch.no_grad():
        return net(torch.from_numpy((2 * (x.astype(np.float32) - lo) / (hi - lo) - 1).astype(np.float32)))[
            :, 0
        ].numpy()


def yields_weights(weight: np.ndarray, is_signal: np.ndarray) -> np.ndarray:
    """Weights scaled so that signal and background sum to the paper's yields."""
    out = np.asarray(weight, float).copy()
    out[is_signal] *= PAPER_SIGNAL / out[is_signal].sum()
    out[~is_signal] *= PAPER_BACKGROUND / out[~is_signal].sum()
    return out


def significance_line(label: str, score, mass, weight, is_signal) -> str:
    det = metrics.binned_significance_detail(score, mass, weight, is_signal, 8)
    win = (mass > 120) & (mass < 130)
    auc = roc_auc_score(is_signal[win], score[win], sample_weight=weight[win])
    return (
        f"{label}: Z = {det['significance']:.2f} ± {det['significance_mc_err']:.2f} (MC stat.), "
        f"AUC {100 * auc:.1f} %, background MC per score bin {[b['n_b_mc'] for b in det['bins']]}"
    )


RECOIL_PANELS = (
    (
        "pt_mass",
        "llg_pt_over_mllg",
        np.array([0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0]),
        r"$p_T^{\ell\ell\gamma}/m_{\ell\ell\gamma}$",
    ),
    ("llg_ptt", "llg_ptt", np.array([0, 3, 8, 15, 30, 50, 70, 150.0]), r"$p_{Tt}$ [GeV]"),
)


def selected_events(results: Path) -> pd.DataFrame:
    """Every sample's feature file of a run, 100 < mllg < 180 GeV."""
    frames = [pd.read_parquet(p) for p in sorted((results / "features").glob("*.parquet"))]
    frame = pd.concat(frames, ignore_index=True)
    return frame[(frame["mllg"] > 100) & (frame["mllg"] < 180)]


def recoil_plot(paper: pd.DataFrame, runs: list[tuple[str, Path]], path: Path) -> None:
    """Background recoil of the paper's example against each run (last bin: overflow), with chi2/ndf."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep
    from scipy import stats

    hep.style.use("CMS")
    back = paper[paper["classID"] == 0]
    backgrounds = [(label, selected_events(results).query("is_signal == 0")) for label, results in runs]
    fig, axes = plt.subplots(1, 2, figsize=(20, 8))
    for ax, (pcol, ocol, edges, xlabel) in zip(axes, RECOIL_PANELS):
        n = np.histogram(np.clip(back[pcol], edges[0], edges[-1] - 1e-9), edges)[0]
        widths = np.diff(edges)
        for label, frame in backgrounds:
            f = np.histogram(
                np.clip(frame[ocol], edges[0], edges[-1] - 1e-9), edges, weights=frame["weight"]
            )[0]
            expected = f / f.sum() * n.sum()
            chi2 = float(np.sum((n - expected) ** 2 / np.maximum(expected, 1e-9)))
            p_value = stats.chi2.sf(chi2, len(n) - 1)
            hep.histplot(
                expected / n.sum() / widths,
                edges,
                ax=ax,
                label=rf"{label}: $\chi^2$/ndf = {chi2:.1f}/{len(n) - 1} (p = {p_value:.2g})",
            )
            print(
                f"{label}: {pcol} chi2 {chi2:.1f}/{len(n) - 1}, p {p_value:.3g}; "
                f"expected {np.round(expected, 1)} "
                f"observed {n}"
            )
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(
            centres,
            n / n.sum() / widths,
            yerr=np.sqrt(n) / n.sum() / widths,
            fmt="ko",
            label=f"paper's samples (authors' example, {len(back)} events)",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of events / unit")
        ax.set_yscale("log")
        ax.legend(fontsize=13)
        hep.label.exp_label(
            exp="", llabel="Simulation", rlabel=r"13 TeV, selected Z$\gamma$ background", ax=ax, fontsize=14
        )
    fig.tight_layout()
    fig.savefig(path, dpi=60)


#: variables that tell a photon off a lepton (FSR) from one off the quarks (ISR): the example's column, ours,
#: bin edges; mll from the example's lepton pT, eta and phi (massless), ours from the skim
FSR_VARIABLES = (
    ("mll", "mll", np.array([50, 60, 70, 80, 85, 88, 90, 92, 94, 97, 100, 110, 130.0])),
    ("abs_costheta", "abs_cos_theta", np.linspace(0, 1, 11)),
    ("min_dR", "min_dr_lg", np.array([0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0])),
    ("llg_mass", "mllg", np.linspace(100, 180, 17)),
)


def example_mll(paper: pd.DataFrame) -> np.ndarray:
    """mll of the example's leptons from their pT, eta (the tree's 'rapidity': equal for massless leptons)
    and phi."""
    pt1, pt2 = paper["lead_lep_pt"].to_numpy(float), paper["sublead_lep_pt"].to_numpy(float)
    deta = paper["l1_rapidity"].to_numpy(float) - paper["l2_rapidity"].to_numpy(float)
    dphi = paper["l1_phi"].to_numpy(float) - paper["l2_phi"].to_numpy(float)
    return np.sqrt(np.maximum(2 * pt1 * pt2 * (np.cosh(deta) - np.cos(dphi)), 0.0))


def background_with_mll(results: Path) -> pd.DataFrame:
    """The selected background of a run (100 < mllg < 180 GeV) with each event's mll from its skim."""
    frame = selected_events(results).query("is_signal == 0")
    parts = []
    for sample in frame["sample"].unique():
        for path in sorted((results / "skim" / sample).glob("*.root")):
            skim = uproot.open(path)["Skim"].arrays(["entry", "mll"], library="pd")
            skim["chunk"], skim["sample"] = int(path.name.split(".")[0]), sample
            parts.append(skim)
    out = frame.merge(pd.concat(parts), on=["sample", "chunk", "entry"], how="left")
    if out["mll"].isna().any():
        raise ValueError(f"{results}/skim lacks the mll of some selected background events")
    out["abs_cos_theta"] = out["cos_theta"].abs()
    return out


def fsr_fraction(paper: pd.DataFrame, results: Path) -> None:
    """The example background's fraction of Drell-Yan FSR, fitted in each FSR_VARIABLES with templates."""
    back = paper[paper["classID"] == 0].assign(mll=lambda f: example_mll(f))
    back = back.assign(abs_costheta=back["costheta"].abs())
    ours = background_with_mll(results)
    is_fsr = ours["sample"].str.contains("fsr").to_numpy()
    if not is_fsr.any():
        raise ValueError(f"{results} holds no Drell-Yan FSR sample (run config/fsr.yaml for the templates)")
    w = ours["weight"].to_numpy(float)
    own = float(w[is_fsr].sum() / w.sum())
    print(f"== Drell-Yan FSR in the paper's background ({len(back)} example events); {results}: {own:.1%}")
    for pcol, ocol, edges in FSR_VARIABLES:
        x = ours[ocol].to_numpy(float)
        isr = np.histogram(x[~is_fsr], edges, weights=w[~is_fsr])[0]
        fsr = np.histogram(x[is_fsr], edges, weights=w[is_fsr])[0]
        fit = template_fraction(np.histogram(back[pcol], edges)[0], isr, fsr, at=(own,))
        print(
            f"{pcol:13s} FSR fraction {fit.fraction:6.1%} (68 %: {fit.low:.1%}-{fit.high:.1%}), "
            f"chi2 {fit.chi2:.1f}/{fit.ndf}; at {own:.1%}: chi2 {fit.chi2_at[own]:.1f}"
        )


def main(
    repo: Path, results: Path, runs: list[tuple[str, Path]] | None = None, fsr_templates: Path | None = None
) -> None:
    paper = uproot.open(repo / "data/example_data.root")["eval_full_tree"].arrays(library="pd")
    if fsr_templates is not None:
        fsr_fraction(paper, fsr_templates)
    ours = selected_events(results)
    print(f"quantiles {QUANTILES}: paper's example | this workflow")
    for name, cls in (("background", 0), ("signal", 1)):
        pp, oo = paper[paper["classID"] == cls], ours[ours["is_signal"] == cls]
        print(f"== {name}: {len(pp)} example events, {len(oo)} here")
        for pcol, (ocol, _) in [*PAPER_INPUTS.items(), ("llg_mass", ("mllg", None))]:
            qp = weighted_quantiles(pp[pcol].to_numpy(float), np.ones(len(pp)))
            qo = weighted_quantiles(oo[ocol].to_numpy(float), oo["weight"].to_numpy(float))
            print(
                f"{pcol:16s} " + " ".join(f"{v:8.3f}" for v in qp) + " | " + " ".join(f"{v:8.3f}" for v in qo)
            )

    net = paper_etn(repo)
    y_p = paper["classID"].to_numpy() == 1
    s_p = etn_scores(net, paper[list(PAPER_INPUTS)].to_numpy())
    m_p = paper["llg_mass"].to_numpy(float)
    print(
        significance_line(
            "paper's ETN on the paper's example", s_p, m_p, yields_weights(np.ones(len(paper)), y_p), y_p
        )
    )
    for trial in range(sum(c.startswith("split_") for c in ours.columns)):
        test = ours[ours[f"split_{trial}"] == 2]
        y_t = test["is_signal"].to_numpy().astype(bool)
        w_t = yields_weights(test["weight"].to_numpy(float), y_t)
        s_t = etn_scores(net, test[[c for c, _ in PAPER_INPUTS.values()]].to_numpy())
        m_t = test["mllg"].to_numpy(float)
        print(
            significance_line(
                f"paper's ETN on this workflow's test split (trial {trial})", s_t, m_t, w_t, y_t
            )
        )
        if trial == 0:  # the draws to the example's size and the efficiencies below use trial 0's test split
            y_o, w_o, s_o, m_o = y_t, w_t, s_t, m_t
    rng = np.random.default_rng(2024)
    draws = []
    for _ in range(100):  # the example's event counts, background drawn by weight (the example's are equal)
        sig = rng.choice(np.flatnonzero(y_o), int(y_p.sum()), replace=False)
        bkg = rng.choice(
            np.flatnonzero(~y_o), int((~y_p).sum()), replace=False, p=w_o[~y_o] / w_o[~y_o].sum()
        )
        idx = np.r_[sig, bkg]
        draws.append(
            metrics.binned_significance(
                s_o[idx], m_o[idx], yields_weights(np.ones(idx.size), y_o[idx]), y_o[idx], 8
            )[0]
        )
    print(
        f"this workflow's test split drawn to the example's size (100 draws): Z = {np.mean(draws):.2f}, "
        f"spread {np.std(draws):.2f}"
    )
    efficiencies(s_p, y_p, s_o, w_o, y_o)
    if runs:
        recoil_plot(paper, runs, Path(__file__).with_name("paper_example_recoil.png"))


def efficiencies(s_p: np.ndarray, y_p: np.ndarray, s_o: np.ndarray, w_o: np.ndarray, y_o: np.ndarray) -> None:
    """Above the paper's-ETN scores where this workflow's test split keeps 50, 25, 12.5 and 6 % of its
    signal: the signal and background efficiencies of the paper's example beside this workflow's (100-180
    GeV), with the example's Poisson 68 % interval on its background count (the top score bins' background).
    """
    print("paper's ETN: efficiencies above this workflow's signal-quantile thresholds (example | here)")
    for eff in (0.5, 0.25, 0.125, 0.06):
        cut = metrics.weighted_quantile(s_o[y_o], w_o[y_o], np.array([1.0 - eff]), method="hazen")[0]
        n_sig, n_bkg = int((s_p[y_p] > cut).sum()), int((s_p[~y_p] > cut).sum())
        lo, hi = (chi2.ppf(0.16, 2 * n_bkg) / 2 if n_bkg else 0.0), chi2.ppf(0.84, 2 * n_bkg + 2) / 2
        b_here = w_o[~y_o & (s_o > cut)].sum() / w_o[~y_o].sum()
        print(
            f"  score > {cut:.3f}: signal {n_sig / y_p.sum():.4f} | {eff:.4f}; background "
            f"{n_bkg / (~y_p).sum():.4f} ({n_bkg} events, 68 %: {lo / (~y_p).sum():.4f}-"
            f"{hi / (~y_p).sum():.4f}) | {b_here:.4f}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    options = [a for a in sys.argv[3:] if a.startswith("--fsr-templates=")]
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        [(a.rsplit("=", 1)[0], Path(a.rsplit("=", 1)[1])) for a in sys.argv[3:] if a not in options],
        Path(options[-1].split("=", 1)[1]) if options else None,
    )
