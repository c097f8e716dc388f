"""docs/background_recoil.png: the selected background's recoil for the three ISR starting scales (last bin:
overflow).

Usage: python docs/make_background_recoil.py LABEL=features.parquet [LABEL=features.parquet ...]
(feature files of the background made with generation.isr_max = factorization, power_damped, power).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

hep.style.use("CMS")
panels = [
    ("llg_pt_over_mllg", np.linspace(0, 1.5, 31), r"$p_T^{\ell\ell\gamma}/m_{\ell\ell\gamma}$"),
    ("llg_ptt", np.linspace(0, 80, 33), r"$p_{Tt}$ [GeV]"),
    ("llg_pt", np.linspace(0, 200, 41), r"$p_T^{\ell\ell\gamma}$ [GeV]"),
]
fig, axes = plt.subplots(1, 3, figsize=(24, 8))
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    frame = pd.read_parquet(path)
    frame["llg_pt"] = frame["llg_pt_over_mllg"] * frame["mllg"]
    for ax, (col, bins, xlabel) in zip(axes, panels):
        h, _ = np.histogram(np.clip(frame[col], bins[0], bins[-1] - 1e-9), bins=bins, weights=frame["weight"])
        hep.histplot(h / h.sum(), bins, ax=ax, label=f"{label} (median {np.median(frame[col]):.3g})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of events / bin")
        ax.set_yscale("log")
for ax in axes:
    ax.legend(fontsize=14)
    hep.label.exp_label(
        exp="", llabel="Simulation", rlabel=r"13 TeV, selected Z$\gamma$ background", ax=ax, fontsize=14
    )
fig.tight_layout()
fig.savefig("docs/background_recoil.png", dpi=60)
