"""Skim throughput (events/s) and its ratio to uproot's plain read of the same branches; feature building
beside it.

Usage: python bench/bench_skim.py [ntuple.root] [--repeat N]
Without a file, generates a 20 000-event background chunk first (about 10 s). All measurements run
in this process, interleaved, so the ratios are robust against a noisy machine:
- uproot's plain read of the branches the skim uses (the reference);
- the skim as the workflow runs it (io.read_events + selection.preselect);
- the skim's candidate building as before issue 15 (awkward records and vector objects:
  selection.candidate_kinematics(selection.best_candidates(...)), still used by the friend trees),
  after the same read, and the check that both give the same columns;
- feature building (features.sample_frame) on the selected candidates, in selected events/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import uproot
import yaml

import numpy as np

from hzg import io
from hzg.data import features, generate, resolution, selection

REPO = Path(__file__).resolve().parents[1]


def make_ntuple(path: Path, n_events: int) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    spec = generate.ChunkSpec("qqbar_Zgamma", n_events, seed=generate.chunk_seed(99, 0))
    io.write_root(path, generate.simulate_chunk(spec, cfg["detector"], chunk=0, progress=False))


def branches_used(bmap: dict) -> list[str]:
    names = [b for coll in bmap["collections"].values() for b in coll.values()]
    return names + [bmap["weight"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ntuple", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.ntuple or Path(tmp.name) / "bench.root"
    if args.ntuple is None:
        make_ntuple(path, args.events)
    bmap = io.resolve_branch_map("nanoaod")
    cuts = selection.Cuts()
    n = uproot.open(path)["Events"].num_entries
    cols, _ = selection.preselect(io.read_events(path, bmap), cuts, source=str(path))
    cols["chunk"] = np.zeros(len(cols["entry"]), np.int32)
    res_map = resolution.calibrate(
        cols,
        resolution.build_map(
            resolution.objects_from_skim(cols), [0.0, 1.4442, 2.5], [5.0, 25.0, 50.0, 13000.0]
        ),
    )
    split = {"seeds": [1, 2, 3], "n_trials": 3, "fractions": [1 / 3, 1 / 3, 1 / 3]}
    objects_cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["objects"]
    times: dict[str, list[float]] = {
        "plain": [],
        "skim": [],
        "skim_before": [],
        "features": [],
        "objects": [],
    }
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        uproot.open(path)["Events"].arrays(branches_used(bmap), library="ak")
        t1 = time.perf_counter()
        selection.preselect(io.read_events(path, bmap), cuts, source=str(path))
        t2 = time.perf_counter()
        events = io.read_events(path, bmap)
        old = selection.candidate_kinematics(selection.best_candidates(events))
        t3 = time.perf_counter()
        features.sample_frame(
            cols, res_map, "bench", "background", 1.0, 1.0, float(len(cols["entry"])), split
        )
        t4 = time.perf_counter()
        selection.preselect(io.read_events(path, bmap), cuts, source=str(path), objects_cfg=objects_cfg)
        t5 = time.perf_counter()
        for key, dt in zip(
            times,
            (t1 - t0, t2 - t1, t3 - t2 + (t2 - t1) - _candidate_seconds(events), t4 - t3, t5 - t4),
        ):
            times[key].append(dt)
    new = selection.candidate_columns(events)
    same = all(np.array_equal(old[k], new[k], equal_nan=True) for k in old)
    t_plain, t_skim, t_before, t_feat, t_objects = (statistics.median(v) for v in times.values())
    n_sel = len(cols["entry"])
    print(f"events per file:            {n} ({n_sel} selected)")
    print(f"uproot plain read:          {n / t_plain:12,.0f} events/s")
    print(f"skim (read + preselection): {n / t_skim:12,.0f} events/s")
    print(
        f"skim with the object block:  {n / t_objects:12,.0f} events/s (as the workflow runs it: "
        f"objects {objects_cfg}; ratio to the plain read {t_plain / t_objects:.3f})"
    )
    print(f"skim as before issue 15:    {n / t_before:12,.0f} events/s (same candidates: {same})")
    print(
        f"feature building:           {n_sel / t_feat:12,.0f} selected events/s "
        f"({n / (t_skim + t_feat * 1.0):,.0f} input events/s for skim + features of this file)"
    )
    print(
        f"skim / plain-read throughput ratio: {t_plain / t_skim:.3f} "
        f"(before issue 15: {t_plain / t_before:.3f}; "
        f"speed-up {t_before / t_skim:.2f}x)"
    )


def _candidate_seconds(events) -> float:
    """Time of the current candidate building alone (swapped for the old one in the 'before' figure)."""
    t0 = time.perf_counter()
    selection.candidate_columns(events)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
