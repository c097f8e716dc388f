"""Rule fit_plots: pre-/post-fit mllg per category, likelihood scan, pulls, impact ranking."""

import json
from pathlib import Path

import numpy as np

from hzg import logs
from hzg.results import fit
from hzg.results.fit import plots

logs.setup(snakemake.log[0])
p = snakemake.params
spec = json.loads(Path(snakemake.input.workspace).read_text())
result = json.loads(Path(snakemake.input.fit).read_text())
tmpl = json.loads(Path(snakemake.input.templates).read_text())
# the MC that makes the data: its sum of w^2 per mass bin, signal + background, per category
mc_sumw2 = {
    cat: np.add(tmpl["signal_sumw2"][cat], tmpl["background_mc_sumw2"][cat]) for cat in tmpl["categories"]
}
full = result["with_systematics"]["fit"]
edges = result["mass_edges"]
out = Path(p.outdir)
for stage, pars in (("Pre-fit", None), ("Post-fit", [q["value"] for q in full["parameters"]])):
    yields = fit.category_yields(spec, pars)
    for i, (cat, info) in enumerate(result["categories"].items()):
        stem = out / f"{stage.lower().replace('-', '')}_{i}"
        if cat in yields:
            plots.mass_fit(
                yields[cat],
                edges,
                stem,
                p.luminosity_fb,
                p.sqrt_s_tev,
                category=cat,
                stage=stage,
                mc_sumw2=mc_sumw2.get(cat),
            )
        else:
            plots.left_out(stem, p.luminosity_fb, p.sqrt_s_tev, cat, info.get("reason", "left out"))
plots.likelihood_scan(full, out / "scan", p.luminosity_fb, p.sqrt_s_tev, stat_only=result["stat_only"]["fit"])
plots.pulls(full, out / "pulls", p.luminosity_fb, p.sqrt_s_tev)
plots.ranking(result.get("ranking", []), out / "ranking", p.luminosity_fb, p.sqrt_s_tev)
