"""Skim throughput (events/s) and its ratio to uproot's plain read of the same branches.

Usage: python bench/bench_skim.py [ntuple.root] [--repeat N]
Without a file, generates a 20 000-event background chunk first (about 10 s). Both measurements run
in this process, interleaved, so the ratio is robust against a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import uproot
import yaml

from hzg import io
from hzg.data import generate, selection

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
    plain, skim = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        uproot.open(path)["Events"].arrays(branches_used(bmap), library="ak")
        t1 = time.perf_counter()
        selection.preselect(io.read_events(path, bmap), cuts, source=str(path))
        t2 = time.perf_counter()
        plain.append(t1 - t0)
        skim.append(t2 - t1)
    t_plain, t_skim = statistics.median(plain), statistics.median(skim)
    print(f"events per file:            {n}")
    print(f"uproot plain read:          {n / t_plain:12,.0f} events/s")
    print(f"skim (read + preselection): {n / t_skim:12,.0f} events/s")
    print(f"skim / plain-read throughput ratio: {t_plain / t_skim:.3f}")


if __name__ == "__main__":
    main()
