"""Rule fit: templates per score category -> pyhf workspace -> mu, its uncertainty, significance, limit."""
import json
import logging
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import fit, io, logs, metrics, templates  # noqa: E402
from hzg.classifier import Classifier  # noqa: E402

logs.setup(snakemake.log[0])
cfg = snakemake.params.fit
shape = cfg["systematics"]["shape"]


def frames(paths):
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def of(name, paths):
    return [p for p in paths if f"/{name}_" in p]


varied = {name: {"up": frames(of(name, snakemake.input.up)), "down": frames(of(name, snakemake.input.down))}
          for name in shape}
mass = metrics.mass_edges(cfg["mass_bins"])
tmpl, score_edges = templates.build_templates(Classifier.load(snakemake.input.checkpoint), frames(snakemake.input.nominal),
                                              varied, cfg["trial"], cfg["n_score_bins"], mass)
spec = fit.build_workspace(tmpl, cfg["systematics"])
result = fit.summarize(spec, poi_bounds=tuple(cfg["mu_bounds"]), include_mc_stat=False)  # rank the named NPs
result["score_edges"] = score_edges.tolist()
result["mass_edges"] = mass.tolist()
for block in ("stat_only", "with_systematics"):
    r = result[block]
    logging.info("%s: mu = %.3f +%.3f -%.3f, expected significance %.3f sigma, 95%% CL limit %s", block,
                 r["mu_hat"], r["err_up"], r["err_down"], r["significance"], r["upper_limit"] or r["limit_note"])
io.write_json(snakemake.output.workspace, spec)
io.write_json(snakemake.output.templates, tmpl.to_dict())
io.write_json(snakemake.output.fit, json.loads(json.dumps(result, default=float)))
