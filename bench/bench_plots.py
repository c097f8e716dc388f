"""Plot time: the Simulation label placed by mplhep's own draws against `label_simulation`.

mplhep draws the whole figure to place a label (`hzg.results.plotting.label_simulation` text). This benchmark
makes the same fit plot (`hzg.results.fit.plots.mass_fit`, synthetic yields of 80 mass bins) with the label
from mplhep's `exp_label` as it comes ("mplhep") and from `label_simulation` ("project"), interleaved in one
process, and prints the seconds per figure (PDF + PNG), their ratio, and whether the PNGs are identical.

    .venv/bin/python bench/bench_plots.py [--figures 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from hzg.results import plotting
from hzg.results.fit import plots


def mplhep_label(ax, luminosity_fb: float, sqrt_s_tev: float) -> None:
    plotting.hep.label.exp_label(ax=ax, **plotting.simulation_label_args(luminosity_fb, sqrt_s_tev))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--figures", type=int, default=4, help="fit plots per timing")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the fastest counts")
    args = parser.parse_args()
    edges = np.linspace(100.0, 180.0, 81)
    centres = 0.5 * (edges[1:] + edges[:-1])
    background = 4000.0 * np.exp(-(centres - 100.0) / 30.0)
    signal = 30.0 * np.exp(-0.5 * ((centres - 125.0) / 1.8) ** 2)
    yields = {"signal": signal, "background": background, "data": np.round(signal + background)}
    labels = {"mplhep": mplhep_label, "project": plotting.label_simulation}
    best = {k: float("inf") for k in labels}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, label in labels.items():
                plots.label_simulation = label
                t0 = time.perf_counter()
                for i in range(args.figures):
                    plots.mass_fit(yields, edges, Path(tmp) / f"{name}_{i}", 138.0, 13.0, category="bin0")
                best[name] = min(best[name], (time.perf_counter() - t0) / args.figures)
        plots.label_simulation = plotting.label_simulation
        same = np.array_equal(
            mpimg.imread(Path(tmp) / "mplhep_0.png"), mpimg.imread(Path(tmp) / "project_0.png")
        )
    print(f"fit plot (PDF + PNG), fastest of {args.repeats} interleaved repeats of {args.figures} figures")
    for name in labels:
        print(f"{name:8s} {best[name]:.3f} s per figure")
    print(f"mplhep / project: {best['mplhep'] / best['project']:.2f}; PNGs identical: {bool(same)}")


if __name__ == "__main__":
    main()
