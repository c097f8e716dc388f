"""Hadron-level generation: what any veto before the multi-parton interactions can gain.

Issue 15 asks for 3x the hadron-level selected background events per core-second. This benchmark measures
the two bounds on what a cut on the hard process (the only thing known before Pythia's expensive steps) can
give, for qqbar -> Z gamma with config/paper.yaml's generator settings (hadron level):

1. Where an event's time goes. Pythia alone (no Python hooks; the m-hat stratum 118-132 GeV, the chunk's
   largest), with and without multi-parton interactions, hadronisation and Pythia's own event check, the
   modes interleaved --pythia-step events at a time in one process (CPU time per event).
2. What the hard process knows about the selection. A hadron-level chunk made as the workflow makes it
   (m-hat strata, bias, acceptance veto), the hard-process summary of every event (the acceptance veto's own
   inputs: lepton and photon pT and |eta|) beside its full preselection after the detector response. For
   tighter vetoes on the hard process: the share of events they remove (the most they can gain in selected
   events per core-second, since a vetoed hard process costs almost nothing) and the share of the selected
   weight they lose (the bias they bring). For an unbiased thinning instead (each event kept with
   probability p, the selection probability estimated from the hard process in bins of those variables on
   half the events, scaled and bounded; the kept events weigh 1/p): on the other half, the expected gain in
   raw and in effective ((sum w)^2 / sum w^2) selected events per core-second.

    .venv/bin/python bench/bench_hadron_limits.py [--events 8000] [--pythia-events 300]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from hzg import io, metrics
from hzg.config_checks import load_config
from hzg.data import generate, selection

REPO = Path(__file__).resolve().parents[1]
PYTHIA_MODES = {
    "as generated": [],
    "no event check": ["Check:event = off"],
    "no hadronisation": ["HadronLevel:all = off"],
    "no MPI": ["PartonLevel:MPI = off"],
}
#: tighter acceptance vetoes on the hard process: (name, max |eta| of leptons and photon, lead lepton pT,
#: sublead lepton pT, photon pT); the workflow's is AcceptanceVeto() = (3.0, 15, 8, 8)
VETOES = [
    ("|eta| < 2.8", 2.8, 15.0, 8.0, 8.0),
    ("|eta| < 2.6", 2.6, 15.0, 8.0, 8.0),
    ("pT > 20 / 11, photon > 11", 3.0, 20.0, 11.0, 11.0),
    ("|eta| < 2.7, pT > 20 / 10, photon > 10", 2.7, 20.0, 10.0, 10.0),
    ("|eta| < 2.6, pT > 22 / 12, photon > 12", 2.6, 22.0, 12.0, 12.0),
]


def pythia_costs(spec: generate.ChunkSpec, n: int, step: int) -> dict[str, float]:
    """CPU ms per event of Pythia alone in each of PYTHIA_MODES, interleaved `step` events at a time."""
    import pythia8mc

    stratum = dataclasses.replace(spec, mhat_min=118.0, mhat_max=132.0, mhat_strata=None)
    lines = generate.pythia_settings(stratum)
    pythias = {}
    for name, extra in PYTHIA_MODES.items():
        pythia = pythia8mc.Pythia("", False)
        for line in lines + extra:
            pythia.readString(line)
        if not pythia.init():
            raise RuntimeError(f"Pythia's init failed in mode {name!r}")
        pythias[name] = pythia
    cpu = dict.fromkeys(pythias, 0.0)
    for start in range(0, n, step):
        for name, pythia in pythias.items():
            c0 = time.process_time()
            for _ in range(min(step, n - start)):
                pythia.next()
            cpu[name] += time.process_time() - c0
    return {name: 1e3 * seconds / n for name, seconds in cpu.items()}


@contextlib.contextmanager
def recorded_hard_processes(out: list[list[float]]) -> Iterator[None]:
    """Within the block, every hard process that the acceptance veto keeps appends (lead, sublead lepton pT,
    max lepton |eta|, photon pT, photon |eta|) to `out`, in the order of the chunk's events: read from the
    veto's own inputs (`generate.AcceptanceVeto.passes`, the hard-process summary's leptons and photons)."""
    passes = generate.AcceptanceVeto.passes

    def veto_passes(self, lepton_pt, lepton_eta, photon_pt, photon_eta):
        kept = passes(self, lepton_pt, lepton_eta, photon_pt, photon_eta)
        if kept:
            pts = sorted(lepton_pt, reverse=True) + [0.0, 0.0]
            out.append(
                [
                    pts[0],
                    pts[1],
                    max((abs(e) for e in lepton_eta), default=9.0),
                    max(photon_pt, default=0.0),
                    abs(photon_eta[int(np.argmax(photon_pt))]) if photon_pt else 9.0,
                ]
            )
        return kept

    generate.AcceptanceVeto.passes = veto_passes
    try:
        yield
    finally:
        generate.AcceptanceVeto.passes = passes


def made_chunk(spec: generate.ChunkSpec, cfg: dict, workdir: Path) -> dict[str, np.ndarray]:
    """The chunk as the workflow makes it: per event its hard process, weight and whether it is selected,
    and the CPU seconds it took."""
    hard: list[list[float]] = []
    c0 = time.process_time()
    with recorded_hard_processes(hard):
        trees = generate.simulate_chunk(spec, cfg["detector"], 0, progress=False)
    cpu = time.process_time() - c0
    path = workdir / "chunk.root"
    io.write_root(path, trees)
    events = io.read_events(path, io.resolve_branch_map("nanoaod"))
    columns = selection.candidate_columns(events)
    selected = selection.passes_all(selection.cut_masks(columns, selection.Cuts()))
    if len(hard) != len(selected):
        raise RuntimeError(f"{len(hard)} recorded hard processes for {len(selected)} events")
    return {
        "hard": np.array(hard),
        "weight": ak.to_numpy(events.weight).astype(float),
        "selected": selected,
        "cpu": np.array(cpu),
    }


def thinning_gains(
    hard: np.ndarray, weight: np.ndarray, selected: np.ndarray, p_ref: float, p_min: float, seed: int
) -> tuple[float, float, float]:
    """(cost, raw gain, effective gain) of keeping each event with p = clip(P / p_ref, p_min, 1), P its
    selection probability binned in the hard process (estimated on a random half, measured on the other):
    cost = the share of events still made, gains in selected events per core-second (expected values)."""
    edges = [
        np.array([0, 20, 25, 30, 40, np.inf]),  # lead lepton pT
        np.array([0, 10, 14, 16, 20, np.inf]),  # sublead lepton pT
        np.array([0, 1.0, 1.5, 2.0, 2.3, 2.5, 2.6, 2.7, 2.8, np.inf]),  # max lepton |eta|
        np.array([0, 10, 12, 14, 16, 20, 30, np.inf]),  # photon pT
        np.array([0, 1.0, 1.4, 1.6, 2.0, 2.3, 2.5, 2.6, 2.8, np.inf]),  # photon |eta|
    ]
    index = [np.digitize(hard[:, k], e[1:-1]) for k, e in enumerate(edges)]
    cell = np.ravel_multi_index(index, [len(e) - 1 for e in edges])
    estimate = np.random.default_rng(seed).random(len(cell)) < 0.5
    n = np.bincount(cell[estimate], minlength=cell.max() + 1)
    k = np.bincount(cell[estimate], weights=selected[estimate], minlength=cell.max() + 1)
    p = np.clip(((k + 0.5) / (n + 1.0))[cell] / p_ref, p_min, 1.0)
    test = ~estimate
    sel = test & selected
    cost = p[test].sum() / test.sum()
    raw = (p[sel].sum() / cost) / sel.sum()
    # expected sums over the kept events: each selected event present with probability p, weighing w / p
    kept = metrics.effective_events(weight[sel], weight[sel] ** 2 / p[sel])
    eff = (kept / cost) / metrics.effective_events(weight[sel], weight[sel] ** 2)
    return float(cost), float(raw), float(eff)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=8000, help="events of the hadron-level chunk")
    parser.add_argument("--pythia-events", type=int, default=300, help="events per Pythia mode")
    parser.add_argument("--pythia-step", type=int, default=100)
    parser.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config(args.config)
    spec = generate.chunk_spec(
        "qqbar_Zgamma", args.events, args.seed, dict(cfg["generation"], level="hadron"), cfg["sqrt_s_tev"]
    )

    costs = pythia_costs(spec, args.pythia_events, args.pythia_step)
    full = costs["as generated"]
    print(f"1. Pythia alone, qqbar -> Z gamma at hadron level, {args.pythia_events} events a mode (CPU):")
    for name, ms in costs.items():
        print(f"  {name:18s} {ms:6.2f} ms/event ({100 * ms / full:5.1f} %)")
    print(
        f"  multi-parton interactions (their showers and the hadronisation of what they add): "
        f"{100 * (full - costs['no MPI']) / full:.0f} % of an event's time"
    )

    with tempfile.TemporaryDirectory() as tmp:
        chunk = made_chunk(spec, cfg, Path(tmp))
    hard, weight, selected = chunk["hard"], chunk["weight"], chunk["selected"]
    n, n_sel = len(selected), int(selected.sum())
    print(
        f"2. the workflow's hadron-level chunk: {n} events in {float(chunk['cpu']):.1f} CPU s "
        f"({1e3 * float(chunk['cpu']) / n:.2f} ms/event, generation, detector and Pythia set-up), "
        f"{n_sel} selected ({100 * n_sel / n:.1f} %): no cut before the MPI can gain more than "
        f"{n / n_sel:.1f}x, and only if the hard process decided the selection"
    )
    lead, sub, eta, gpt, geta = hard.T
    total = weight[selected].sum()
    for name, eta_max, lead_min, sub_min, gpt_min in VETOES:
        keep = (eta < eta_max) & (geta < eta_max) & (lead > lead_min) & (sub > sub_min) & (gpt > gpt_min)
        lost = weight[selected & ~keep].sum() / total
        print(
            f"  veto {name:40s} removes {100 * (1 - keep.mean()):4.1f} % of the events "
            f"(at most {1 / keep.mean():.2f}x), loses {100 * lost:4.1f} % of the selected weight "
            f"({int((selected & ~keep).sum())} events)"
        )
    for p_ref in (0.1, 0.2, 0.4):
        cost, raw, eff = thinning_gains(hard, weight, selected, p_ref, 0.05, args.seed)
        print(
            f"  thinning by the estimated selection probability / {p_ref}: makes {100 * cost:.0f} % of "
            f"the events; selected per core-second {raw:.2f}x raw, {eff:.2f}x effective"
        )


if __name__ == "__main__":
    main()
