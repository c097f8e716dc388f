"""Drell-Yan FSR: the 2 -> 1 sample alone against the 2 -> 1 sample sliced at X plus the Drell-Yan + jet slice
above X (`generation.fsr_slice_pt`): closure of the selected cross-section and of the pT(llg) / m(llg)
spectrum, and effective events per CPU-second where the top score bins are.

Usage: python bench/bench_fsr_slice.py [--slice-pt 30] [--unsliced 40000] [--below 20000] [--above 10000]
                                        [--chunk 5000] [--workers 2]

Every sample is made with the default configuration's generation and detector settings (config/config.yaml),
in chunks of --chunk events run on --workers processes; each chunk is normalised to its own Pythia
cross-section (as the workflow does) and the chunks of a sample are averaged. Printed: per sample its CPU
seconds, selected events, and for the selected events with 120 < m(llg) < 130 GeV the cross-section and the
effective number of events (sum w)^2 / sum w^2 for pT(llg)/m(llg) above 0, 0.2, 0.4 and 0.6, per CPU-second;
then the pT(llg)/m(llg) spectrum of the selected events in 100-180 GeV for the unsliced sample and the sliced
pair, bin by bin with the pull, and the chi^2.

--unsliced-without-veto makes the unsliced sample without `generation.acceptance_veto`, which cuts the hard
process' leptons before the initial-state shower recoils them; --veto-check PROCESS compares PROCESS (for
example qqbar_Zgamma) with and without that veto, --unsliced events each, in the same way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PB_TO_FB = 1000.0
EDGES = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.2])
CUTS = (0.0, 0.2, 0.4, 0.6)


def _chunk(
    args: tuple[str, int, int, float | None, float, bool, tuple[tuple[str, float], ...]],
) -> dict[str, np.ndarray | float]:
    """One chunk: generate, detector, n-tuple, preselection; selected pT/m, m(llg), weight in fb."""
    from hzg import io
    from hzg.data import generate, selection

    process, n_events, seed, slice_pt, power, veto, override = args
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    generation = dict(cfg["generation"], fsr_slice_pt=slice_pt)
    if not veto:
        generation["acceptance_veto"] = None
    elif override:
        generation["acceptance_veto"] = dict(generation["acceptance_veto"], **dict(override))
    if power:
        generation["fsr_bias"] = dict(generation["fsr_bias"], pt_over_m_power=power, pt_over_m_ref=0.3)
    spec = generate.chunk_spec(process, n_events, seed, generation, cfg["sqrt_s_tev"])
    c0 = time.process_time()
    trees = generate.simulate_chunk(spec, cfg["detector"], 0, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chunk.root"
        io.write_root(path, trees)
        passed, _ = selection.preselect(
            io.read_events(path, io.resolve_branch_map("nanoaod")), selection.Cuts(), str(path)
        )
    cpu = time.process_time() - c0
    runs = trees["Runs"]
    scale = float(runs["sigmaGen_pb"][0]) * PB_TO_FB / float(runs["genEventSumw"][0])
    px = sum(passed[f"{o}_pt"] * np.cos(passed[f"{o}_phi"]) for o in ("lm", "lp", "g"))
    py = sum(passed[f"{o}_pt"] * np.sin(passed[f"{o}_phi"]) for o in ("lm", "lp", "g"))
    return {
        "pt_over_m": np.hypot(px, py) / passed["mllg"],
        "mllg": passed["mllg"],
        "weight": passed["weight"] * scale,
        "cpu": cpu,
    }


def make(
    process: str,
    n_events: int,
    chunk: int,
    seed: int,
    slice_pt: float | None,
    workers: int,
    power: float = 0.0,
    veto: bool = True,
    override: tuple[tuple[str, float], ...] = (),
) -> dict:
    """A sample of `n_events` in chunks; each chunk's weights are divided by the number of chunks."""
    jobs = [
        (process, chunk, seed + i, slice_pt, power, veto, override) for i in range(max(1, n_events // chunk))
    ]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_chunk, jobs))
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("pt_over_m", "mllg", "weight")}
    out["weight"] = out["weight"] / len(parts)
    out["cpu"] = sum(p["cpu"] for p in parts)
    return out


def window_table(name: str, s: dict) -> None:
    w = s["weight"]
    win = (s["mllg"] > 120.0) & (s["mllg"] < 130.0)
    cells = []
    for cut in CUTS:
        sel = win & (s["pt_over_m"] > cut)
        sw, sw2 = w[sel].sum(), (w[sel] ** 2).sum()
        n_eff = sw * sw / sw2 if sw2 > 0 else 0.0
        cells.append(f"{sw:7.3f} fb ± {np.sqrt(sw2):6.3f}, eff {n_eff:7.1f} ({n_eff / s['cpu']:6.2f}/cpu-s)")
    print(f"{name:9s} cpu {s['cpu']:7.1f} s, selected {len(w):6d}, sigma sel {w.sum():7.2f} fb")
    for cut, cell in zip(CUTS, cells):
        print(f"           120-130 GeV, pT/m > {cut:.1f}: {cell}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice-pt", type=float, default=30.0)
    ap.add_argument("--unsliced", type=int, default=40000)
    ap.add_argument("--below", type=int, default=20000)
    ap.add_argument("--above", type=int, default=10000)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7100)
    ap.add_argument(
        "--slice-bias-power",
        type=float,
        default=0.0,
        help="slice: bias (p-hat_T / m* / 0.3)^power (fsr_bias)",
    )
    ap.add_argument("--only-slice", action="store_true", help="make and print the slice alone")
    ap.add_argument(
        "--veto-check",
        metavar="PROCESS",
        help="instead: PROCESS (for example qqbar_Zgamma) with and without generation.acceptance_veto, "
        "--unsliced events each",
    )
    ap.add_argument(
        "--unsliced-without-veto",
        action="store_true",
        help="the unsliced sample without generation.acceptance_veto (it cuts leptons before the ISR recoil)",
    )
    ap.add_argument("--veto", default="", help="acceptance veto overrides, e.g. eta_max=5,lead_lepton_pt=10")
    a = ap.parse_args()
    override = tuple((k, float(v)) for k, v in (kv.split("=") for kv in a.veto.split(",") if kv))
    if a.veto_check:
        with_veto = make(a.veto_check, a.unsliced, a.chunk, a.seed, None, a.workers, override=override)
        without = make(a.veto_check, a.unsliced, a.chunk, a.seed + 500, None, a.workers, veto=False)
        window_table("veto", with_veto)
        window_table("no veto", without)
        compare(with_veto, without, ("with veto", "without"))
        return

    def slice_above() -> dict:
        return make(
            "drellyan_jet_fsr",
            a.above,
            a.chunk,
            a.seed + 2000,
            a.slice_pt,
            a.workers,
            a.slice_bias_power,
            override=override,
        )

    if a.only_slice:
        window_table("above", slice_above())
        return
    base = make(
        "drellyan_fsr",
        a.unsliced,
        a.chunk,
        a.seed,
        None,
        a.workers,
        veto=not a.unsliced_without_veto,
        override=override,
    )
    below = make("drellyan_fsr", a.below, a.chunk, a.seed + 1000, a.slice_pt, a.workers, override=override)
    above = slice_above()
    pair = {k: np.concatenate([below[k], above[k]]) for k in ("pt_over_m", "mllg", "weight")}
    pair["cpu"] = below["cpu"] + above["cpu"]
    print(f"slice at p-hat_T = {a.slice_pt} GeV")
    for name, s in (("unsliced", base), ("below", below), ("above", above), ("sliced", pair)):
        window_table(name, s)
    compare(base, pair, ("unsliced", "sliced"))


def compare(base: dict, pair: dict, names: tuple[str, str]) -> None:
    """The selected pT(llg)/m(llg) spectrum of two samples, bin by bin with the pull, and the chi^2."""
    print(f"selected, 100-180 GeV: pT(llg)/m(llg) bin | {names[0]} fb | {names[1]} fb | pull")
    chi2 = 0.0
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        vals = []
        for s in (base, pair):
            sel = (s["pt_over_m"] >= lo) & (s["pt_over_m"] < hi)
            vals.append((s["weight"][sel].sum(), np.sqrt((s["weight"][sel] ** 2).sum())))
        (x, ex), (y, ey) = vals
        pull = (y - x) / np.hypot(ex, ey) if ex or ey else 0.0
        chi2 += pull * pull
        print(f"  {lo:4.2f}-{hi:4.2f} | {x:8.3f} ± {ex:6.3f} | {y:8.3f} ± {ey:6.3f} | {pull:+5.2f}")
    print(
        f"chi2 {chi2:.1f} for {len(EDGES) - 1} bins; "
        f"total {base['weight'].sum():.2f} vs {pair['weight'].sum():.2f} fb"
    )


if __name__ == "__main__":
    main()
