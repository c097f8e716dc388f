"""Lepton and photon isolation against the paper's samples: this workflow's detector response with the
config's isolation and with another one, on the same generated events, beside the authors' published example.

The paper's detector is Delphes' CMS card (isolation over the energy-flow objects in Delta R < 0.5, at most
0.12 of the pT for electrons and photons and 0.25 for muons). The example of jaebak/EventClassifierTransformer
(`data/example_data.root`, 2929 signal and 1711 background events of the paper's samples) shows its marks:
no event with min Delta R(l, gamma) below 0.5, and a signal m_llg without the low tail of leptons that
radiated a photon. For each isolation this script prints, from generated events of the default's samples:

* the signal's selection efficiency (of Z -> ee/mumu events; the paper keeps 9 M of 45 M, 20 %) and its
  muon fraction, at the config's generation level and, with --hadron N, at hadron level (MPI, hadrons:
  the underlying event enters the cones as in the paper's samples);
* the signal m_llg quantiles (2, 5, 16, 50, 84, 95 %) per lepton flavour, and the fraction of events with
  min Delta R(l, gamma) < 0.5, for signal and background;
* the background's selected cross-section (the k_factor follows it) and the fraction of it in the signal's
  5-95 % m_llg window, which sets the random classifier's significance; with --hadron-background N, its
  selected cross-section at hadron level too (config/paper.yaml's k_factor follows that one).

Usage:
    python docs/isolation_study.py /tmp/ECT [--signal N] [--background N] [--hadron N] \
        [--hadron-background N] [--other CONE,E,MU,GAMMA]   # the other isolation: default 0.3,0.35,0.35,0.30
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
import yaml

from hzg import io, metrics
from hzg.data import detector, generate, selection

ROOT = Path(__file__).resolve().parents[1]
QUANTILES = np.array([0.02, 0.05, 0.16, 0.5, 0.84, 0.95])
MUON = 13


def isolation(det: dict, cone: float, e: float, mu: float, gamma: float) -> dict:
    """A copy of the config's `detector` with another isolation (and no jets: they play no part here)."""
    out = copy.deepcopy(det)
    out.pop("jet", None)
    out["isolation_cone"] = cone
    for name, cut in (("electron", e), ("muon", mu), ("photon", gamma)):
        out[name]["rel_iso_max"] = cut
    return out


def generated(cfg: dict, process: str, n: int, seed: int, hadron: bool) -> tuple[ak.Array, np.ndarray, tuple]:
    """Particles, generator weights, chunk info and spec of n events of `process`."""
    gen_cfg = dict(cfg["generation"])
    if hadron:
        gen_cfg.update(level="hadron", qcd_final_state_shower=True)
    spec = generate.chunk_spec(process, n, seed, gen_cfg, cfg["sqrt_s_tev"])
    particles, weights, meta = generate.generate_chunk(spec, progress=True)
    return particles, weights, (meta, spec)


def selected(cfg: dict, det: dict, sample: tuple, workdir: Path, tag: str) -> tuple[dict, float]:
    """Selected candidate columns of `sample` through detector `det`, and the selected cross-section (pb)."""
    particles, weights, (meta, spec) = sample
    rng = np.random.default_rng(generate.detector_seed(spec.seed, det["seed_offset"]))
    trees = generate.nanoaod_trees(detector.reconstruct(particles, det, rng), weights, meta, spec, 0)
    path = workdir / f"{tag}.root"
    io.write_root(path, trees)
    cuts = selection.Cuts.from_config(cfg["selection"])
    cols, _ = selection.preselect(io.read_events(path, cfg["branch_map"]), cuts, source=str(path))
    return cols, meta.sigma_gen_pb * cols["weight"].sum() / weights.sum()


def quantiles(mass: np.ndarray, weight: np.ndarray) -> str:
    return " ".join(f"{q:6.2f}" for q in metrics.weighted_quantile(mass, weight, QUANTILES, method="hazen"))


def min_dr(cols: dict) -> np.ndarray:
    return np.minimum(cols["dr_lm_g"], cols["dr_lp_g"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paper_repo", type=Path, help="a clone of jaebak/EventClassifierTransformer")
    ap.add_argument("--signal", type=int, default=30000)
    ap.add_argument("--background", type=int, default=120000)
    ap.add_argument("--hadron", type=int, default=0, help="signal events at hadron level (0: none)")
    ap.add_argument(
        "--hadron-background", type=int, default=0, help="background events at hadron level (0: none)"
    )
    ap.add_argument("--other", default="0.3,0.35,0.35,0.30", help="CONE,E,MU,GAMMA of the other isolation")
    args = ap.parse_args()

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    det_cfg = cfg["detector"]
    ours = (det_cfg["isolation_cone"], *(det_cfg[k]["rel_iso_max"] for k in ("electron", "muon", "photon")))
    other = tuple(float(x) for x in args.other.split(","))
    schemes = {f"config {ours}": isolation(det_cfg, *ours), f"other {other}": isolation(det_cfg, *other)}

    example = uproot.open(args.paper_repo / "data/example_data.root")["eval_full_tree"].arrays(library="pd")
    ex_sig, ex_bkg = example[example.classID == 1], example[example.classID == 0]
    ones = np.ones(len(ex_sig))
    lo, hi = metrics.weighted_quantile(ex_sig.llg_mass.values, ones, np.array([0.05, 0.95]), method="hazen")
    print("m_llg quantiles (2, 5, 16, 50, 84, 95 %) of the signal, GeV")
    print(f"  paper's example, all   {quantiles(ex_sig.llg_mass.values, ones)}")
    for flavour, name in ((0, "ee"), (1, "mumu")):
        part = ex_sig[ex_sig.llg_flavor == flavour]
        print(f"  paper's example, {name:<5} {quantiles(part.llg_mass.values, np.ones(len(part)))}")
    ex_window = ((ex_bkg.llg_mass >= lo) & (ex_bkg.llg_mass <= hi)).mean()
    print(
        f"  paper's example: muon fraction {ex_sig.llg_flavor.mean():.3f}; min dR < 0.5: signal "
        f"{(ex_sig.min_dR < 0.5).mean():.4f}, background {(ex_bkg.min_dR < 0.5).mean():.4f}; background in "
        f"the 5-95 % window {lo:.2f}-{hi:.2f} GeV: {ex_window:.4f}"
    )

    samples = {"signal": generated(cfg, "ggH_Zgamma", args.signal, 11, False)}
    samples["background"] = generated(cfg, "qqbar_Zgamma", args.background, 12, False)
    if args.hadron:
        samples["signal, hadron level"] = generated(cfg, "ggH_Zgamma", args.hadron, 21, True)
    if args.hadron_background:
        samples["background, hadron level"] = generated(cfg, "qqbar_Zgamma", args.hadron_background, 41, True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, det in schemes.items():
            print(f"\nisolation {label} (cone, e, mu, gamma)")
            sig, sig_xs = selected(cfg, det, samples["signal"], Path(tmp), "signal")
            bkg, bkg_xs = selected(cfg, det, samples["background"], Path(tmp), "background")
            w, m, mu = sig["weight"], sig["mllg"], sig["flavour"] == MUON
            eff = sig_xs / samples["signal"][2][0].sigma_gen_pb
            print(f"  signal efficiency {eff:.4f}, muon fraction {w[mu].sum() / w.sum():.3f}")
            print(f"  signal m_llg, all      {quantiles(m, w)}")
            print(f"  signal m_llg, ee       {quantiles(m[~mu], w[~mu])}")
            print(f"  signal m_llg, mumu     {quantiles(m[mu], w[mu])}")
            s_lo, s_hi = metrics.weighted_quantile(m, w, np.array([0.05, 0.95]), method="hazen")
            bw, bm = bkg["weight"], bkg["mllg"]
            in_window = bw[(bm >= s_lo) & (bm <= s_hi)].sum() / bw.sum()
            print(
                f"  min dR < 0.5: signal {w[min_dr(sig) < 0.5].sum() / w.sum():.4f}, background "
                f"{bw[min_dr(bkg) < 0.5].sum() / bw.sum():.4f}"
            )
            print(
                f"  background selected {1e3 * bkg_xs:.1f} fb at LO; in the signal's 5-95 % window "
                f"{s_lo:.2f}-{s_hi:.2f} GeV: {in_window:.4f}"
            )
            if args.hadron:
                had, had_xs = selected(cfg, det, samples["signal, hadron level"], Path(tmp), "hadron")
                had_eff = had_xs / samples["signal, hadron level"][2][0].sigma_gen_pb
                hw, hm = had["weight"], had["mllg"]
                print(
                    f"  hadron level: signal efficiency {had_eff:.4f} (+- "
                    f"{np.sqrt(had_eff * (1 - had_eff) / args.hadron):.4f}), m_llg {quantiles(hm, hw)}"
                )
            if args.hadron_background:
                hadron_bkg = samples["background, hadron level"]
                _, had_bkg_xs = selected(cfg, det, hadron_bkg, Path(tmp), "hadron_bkg")
                print(f"  hadron level: background selected {1e3 * had_bkg_xs:.1f} fb at LO")


if __name__ == "__main__":
    main()
