"""Classifier inputs of paper 000 (Sec. IV B), event weights, stable event keys and trial splits.

The features follow the code of the paper's authors (see `hzg.data.kinematics`): cos Theta, cos theta
(of the positive lepton) and phi in [0, 2 pi) of jaebak/llg_angles, and sigma_m in GeV
(``llg_mass_err`` of jaebak/EventClassifierTransformer) propagated as in jaebak/process_mc.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hzg.data import kinematics, objects, resolution
from hzg.registry import split_column

#: Column of the sigma_m input for each value of the config key ``features.sigma_m``:
#: the paper's mass resolution in GeV, or the alternative sigma_m / m_llg.
SIGMA_M_FEATURE: dict[str, str] = {"absolute": "sigma_m", "relative": "sigma_m_over_m"}
SIGMA_M_DEFAULT = "absolute"


def feature_set(sigma_m: str = SIGMA_M_DEFAULT) -> tuple[str, ...]:
    """The paper's 12 classifier inputs, with sigma_m in GeV ("absolute") or as sigma_m/m ("relative")."""
    if sigma_m not in SIGMA_M_FEATURE:
        raise ValueError(f"features.sigma_m must be one of {sorted(SIGMA_M_FEATURE)}, got {sigma_m!r}")
    return (
        "photon_eta",
        "lep1_eta",
        "lep2_eta",
        "min_dr_lg",
        "max_dr_lg",
        "lep_flavour",
        "llg_pt_over_mllg",
        "llg_ptt",
        SIGMA_M_FEATURE[sigma_m],
        "cos_Theta",
        "cos_theta",
        "phi",
    )


#: The 12 features of the paper (sigma_m in GeV, as the paper).
FEATURES: tuple[str, ...] = feature_set()
#: The 3 momenta added when training with DisCo mass decorrelation.
DISCO_FEATURES: tuple[str, ...] = ("photon_pt_over_mllg", "lep1_pt", "lep2_pt")
#: Computed for every event but not a default input: the alternative form of sigma_m.
ALT_FEATURES: tuple[str, ...] = ("sigma_m_over_m",)
#: Jet features for a VBF / ggF-like categorisation of H -> Z gamma (issue 14, seed paper 002's missing
#: values): the cleaned jets of the skim (`hzg.data.objects`: anti-kT R = 0.4, Delta R > clean_dr from the
#: candidate's leptons and photon, pT-ordered). n_jets counts them; the others are NaN where the event has
#: too few jets: jet1_* and jet1_dphi_llg need one jet, the rest two. Never a default input: the runs of
#: the models `JET_MODELS` (registry) read them.
JET_FEATURES: tuple[str, ...] = (
    "n_jets",
    "jet1_pt",
    "jet1_eta",
    "jet1_dphi_llg",
    "jet2_pt",
    "jet2_eta",
    "mjj",
    "detajj",
    "dphi_llg_jj",
    "zeppenfeld",
)
#: The features that may be missing (NaN) in the feature files, the only ones `check_finite` lets be NaN;
#: the number of jets each needs.
OPTIONAL_FEATURES: dict[str, int] = {
    "jet1_pt": 1,
    "jet1_eta": 1,
    "jet1_dphi_llg": 1,
    "jet2_pt": 2,
    "jet2_eta": 2,
    "mjj": 2,
    "detajj": 2,
    "dphi_llg_jj": 2,
    "zeppenfeld": 2,
}
#: Units for axis labels; "" for dimensionless.
#: file stems of the feature plots where the column name is not unique regardless of case (cos_Theta and
#: cos_theta
#: would overwrite each other on a case-insensitive filesystem): the production and the decay angle
FILE_STEMS: dict[str, str] = {"cos_Theta": "cos_Theta_production", "cos_theta": "cos_theta_decay"}


def file_stem(name: str) -> str:
    """The file stem of a feature's plot: its column name, unique regardless of case."""
    return FILE_STEMS.get(name, name)


UNITS: dict[str, str] = {
    "llg_ptt": "GeV",
    "sigma_m": "GeV",
    "lep1_pt": "GeV",
    "lep2_pt": "GeV",
    "mllg": "GeV",
}
LABELS: dict[str, str] = {
    "photon_eta": r"$\eta_\gamma$",
    "lep1_eta": r"$\eta_{\ell_1}$",
    "lep2_eta": r"$\eta_{\ell_2}$",
    "min_dr_lg": r"min $\Delta R(\ell,\gamma)$",
    "max_dr_lg": r"max $\Delta R(\ell,\gamma)$",
    "lep_flavour": r"lepton flavour (0: $ee$, 1: $\mu\mu$)",
    "llg_pt_over_mllg": r"$p_T^{\ell\ell\gamma}/m_{\ell\ell\gamma}$",
    "llg_ptt": r"$p_{Tt}^{\ell\ell\gamma}$",
    "sigma_m": r"$\sigma_m^{\ell\ell\gamma}$",
    "sigma_m_over_m": r"$\sigma_m/m_{\ell\ell\gamma}$",
    "cos_Theta": r"$\cos\Theta$",
    "cos_theta": r"$\cos\theta$ ($\ell^+$)",
    "phi": r"$\phi$",
    "photon_pt_over_mllg": r"$p_T^\gamma/m_{\ell\ell\gamma}$",
    "lep1_pt": r"$p_T^{\ell_1}$",
    "lep2_pt": r"$p_T^{\ell_2}$",
    "mllg": r"$m_{\ell\ell\gamma}$",
}


def sample_id(name: str) -> int:
    """Stable integer id of a sample name (CRC-32), part of the event key."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-mixed 64-bit hash, vectorised."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def split_index(
    sample: np.ndarray, chunk: np.ndarray, entry: np.ndarray, seed: int, fractions: Sequence[float]
) -> np.ndarray:
    """Train (0) / validation (1) / test (2) of each event: a function of (event key, trial seed) only."""
    key = (
        (np.asarray(sample, np.uint64) << np.uint64(40))
        ^ (np.asarray(chunk, np.uint64) << np.uint64(28))
        ^ np.asarray(entry, np.uint64)
    )
    u = (_splitmix64(key ^ _splitmix64(np.array([seed], dtype=np.uint64))) >> np.uint64(11)).astype(
        np.float64
    ) / 2.0**53
    edges = np.cumsum(fractions)[:-1] / np.sum(fractions)
    return np.searchsorted(edges, u, side="right").astype(np.int8)


def event_weights(
    gen_weight: np.ndarray, xsec_pb: float, luminosity_fb: float, sum_weights: float
) -> np.ndarray:
    """Expected events per MC event: w_gen * sigma * L / sum(w_gen) over all generated events."""
    if not (math.isfinite(sum_weights) and sum_weights > 0):
        raise ValueError(f"sum of generator weights must be positive and finite, got {sum_weights}")
    for name, value in (("cross-section [pb]", xsec_pb), ("luminosity [1/fb]", luminosity_fb)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    gen_weight = np.asarray(gen_weight, np.float64)
    bad = np.flatnonzero(~np.isfinite(gen_weight))
    if bad.size:
        raise ValueError(
            f"generator weight is NaN or infinite at {bad.size} events, first positions {bad[:5].tolist()}"
        )
    return gen_weight * xsec_pb * luminosity_fb * 1000.0 / sum_weights


def compute_features(skim: Mapping[str, np.ndarray], res_map: Mapping[str, Any]) -> pd.DataFrame:
    """All 12 + 3 features, sigma_m/m and mllg from the skimmed candidate columns (`hzg.data.selection`).

    Both forms of sigma_m are written (``sigma_m`` [GeV] and ``sigma_m_over_m``) so that a classifier
    trained on either finds its inputs; `feature_set` picks the one used as input.
    """
    lm = (skim["lm_pt"], skim["lm_eta"], skim["lm_phi"])
    lp = (skim["lp_pt"], skim["lp_eta"], skim["lp_phi"])
    g = (skim["g_pt"], skim["g_eta"], skim["g_phi"])
    lm_lead = skim["lm_pt"] >= skim["lp_pt"]
    dr = np.stack(
        [kinematics.delta_r(lm[1], lm[2], g[1], g[2]), kinematics.delta_r(lp[1], lp[2], g[1], g[2])]
    )
    cos_big, cos_small, phi = kinematics.production_decay_angles(*lm, *lp, *g)
    flavour = np.asarray(skim["flavour"])
    lepton = np.where(flavour == 13, "muon", "electron")
    res_lm = np.where(
        lepton == "muon",
        resolution.lookup(res_map, "muon", lm[0], lm[1]),
        resolution.lookup(res_map, "electron", lm[0], lm[1]),
    )
    res_lp = np.where(
        lepton == "muon",
        resolution.lookup(res_map, "muon", lp[0], lp[1]),
        resolution.lookup(res_map, "electron", lp[0], lp[1]),
    )
    res_g = resolution.lookup(res_map, "photon", g[0], g[1])
    sigma_m = kinematics.mass_resolution(*lm, *lp, *g, res_lm, res_lp, res_g)
    llg = kinematics.four_momenta(*lm) + kinematics.four_momenta(*lp) + kinematics.four_momenta(*g)
    mllg = np.asarray(skim["mllg"])
    return pd.DataFrame(
        {
            "photon_eta": g[1],
            "lep1_eta": np.where(lm_lead, lm[1], lp[1]),
            "lep2_eta": np.where(lm_lead, lp[1], lm[1]),
            "min_dr_lg": dr.min(axis=0),
            "max_dr_lg": dr.max(axis=0),
            "lep_flavour": (flavour == 13).astype(np.float64),
            "llg_pt_over_mllg": np.asarray(llg.pt) / mllg,
            "llg_ptt": kinematics.pt_t(*lm, *lp, *g),
            "sigma_m": sigma_m,
            "cos_Theta": cos_big,
            "cos_theta": cos_small,
            "phi": phi,
            "photon_pt_over_mllg": g[0] / mllg,
            "lep1_pt": np.fmax(lm[0], lp[0]),
            "lep2_pt": np.fmin(lm[0], lp[0]),
            "sigma_m_over_m": sigma_m / mllg,
            "mllg": mllg,
        }
    )


def jet_features(skim: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`JET_FEATURES` from the skim's candidate and jet columns (`hzg.data.objects.skim_columns`: n_jets
    and at least two jet slots jet{k}_{pt,eta,phi,mass}); NaN where an event has too few jets
    (`OPTIONAL_FEATURES`). The Z gamma system is the massless leptons and photon, as in `compute_features`."""
    if "jet1_pt" not in skim:
        raise KeyError(
            "the jet features need the skim's n_jets and two jet slots (config objects.n_jets >= 2, and "
            "n-tuples with a Jet collection)"
        )
    n_jets = np.asarray(skim["n_jets"])
    one, two = n_jets >= 1, n_jets >= 2
    # padding slots (pT 0) give NaN on the way; they are masked below
    with np.errstate(invalid="ignore", divide="ignore"):
        lm, lp, g = (
            kinematics.four_momenta(skim[f"{p}_pt"], skim[f"{p}_eta"], skim[f"{p}_phi"])
            for p in ("lm", "lp", "g")
        )
        j1, j2 = (
            kinematics.four_momenta(
                skim[f"jet{k}_pt"], skim[f"jet{k}_eta"], skim[f"jet{k}_phi"], skim[f"jet{k}_mass"]
            )
            for k in (0, 1)
        )
        llg, jj = lm + lp + g, j1 + j2
        llg_eta, llg_phi = np.asarray(llg.eta), np.asarray(llg.phi)
        j1_eta, j2_eta = np.asarray(skim["jet0_eta"], np.float64), np.asarray(skim["jet1_eta"], np.float64)
        values = {
            "jet1_pt": np.asarray(skim["jet0_pt"], np.float64),
            "jet1_eta": j1_eta,
            "jet1_dphi_llg": np.abs(kinematics.delta_phi(skim["jet0_phi"], llg_phi)),
            "jet2_pt": np.asarray(skim["jet1_pt"], np.float64),
            "jet2_eta": j2_eta,
            "mjj": np.asarray(jj.mass),
            "detajj": np.abs(j1_eta - j2_eta),
            "dphi_llg_jj": np.abs(kinematics.delta_phi(llg_phi, np.asarray(jj.phi))),
            "zeppenfeld": llg_eta - 0.5 * (j1_eta + j2_eta),
        }
    out = {"n_jets": n_jets.astype(np.float64)}
    for name, need in OPTIONAL_FEATURES.items():
        out[name] = np.where(one if need == 1 else two, values[name], np.nan)
    return pd.DataFrame(out, columns=list(JET_FEATURES))


def check_finite(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise naming the column and the number of events where a feature is NaN or infinite; NaN (a missing
    value) is allowed in the declared `OPTIONAL_FEATURES` only, infinity nowhere."""
    for col in columns:
        values = frame[col].to_numpy(dtype=np.float64)
        if col in OPTIONAL_FEATURES:
            bad = np.isinf(values)
            what = "infinite (NaN, a missing value, is allowed in this optional feature)"
        else:
            bad = ~np.isfinite(values)
            what = "NaN or infinite"
        if bad.any():
            raise ValueError(
                f"{source}: feature {col!r} is {what} in {int(bad.sum())} of {len(frame)} events"
            )


def sample_frame(
    skim: Mapping[str, np.ndarray],
    res_map: Mapping[str, Any],
    sample: str,
    kind: str,
    xsec_pb: float,
    luminosity_fb: float,
    sum_weights: float,
    split_cfg: Mapping[str, Any],
    objects_cfg: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Features, mllg, weight, event key (sample, chunk, entry) and one split column per trial; with
    `objects_cfg` (config `objects`) and a skim that carries the objects, also the object block
    obj{i}_{pt,eta,phi,e,type} of `hzg.data.objects` (the inputs of the object model)."""
    frame = compute_features(skim, res_map)
    check_finite(
        frame,
        list(FEATURES) + list(DISCO_FEATURES) + list(ALT_FEATURES) + ["mllg"],
        source=f"sample {sample!r}",
    )
    sid = sample_id(sample)
    frame["weight"] = event_weights(skim["weight"], xsec_pb, luminosity_fb, sum_weights)
    frame["is_signal"] = np.int8(kind == "signal")
    frame["sample"] = sample
    frame["sample_id"] = np.int64(sid)
    frame["chunk"] = np.asarray(skim["chunk"], np.int32)
    frame["entry"] = np.asarray(skim["entry"], np.int64)
    if objects_cfg is not None and "n_extra_photons" in skim:
        block = pd.DataFrame(objects.feature_block(skim, objects_cfg), index=frame.index)
        check_finite(block, list(block.columns), source=f"sample {sample!r} (objects)")
        frame = pd.concat([frame, block], axis=1)
        if "jet1_pt" in skim:  # the jet features (NaN where missing) need two jet slots
            jets = jet_features(skim).set_axis(frame.index)
            check_finite(jets, list(jets.columns), source=f"sample {sample!r} (jet features)")
            frame = pd.concat([frame, jets], axis=1)
    for trial, seed in enumerate(split_cfg["seeds"][: split_cfg["n_trials"]]):
        frame[split_column(trial)] = split_index(
            np.full(len(frame), sid),
            frame["chunk"].to_numpy(),
            frame["entry"].to_numpy(),
            seed,
            split_cfg["fractions"],
        )
    return frame
