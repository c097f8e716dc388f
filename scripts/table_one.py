"""Rule table_one: Table I of the paper (mean ± std over trials of every run and the random classifier)."""

import json
import logging
from pathlib import Path

from hzg import logs, registry
from hzg.results import tables

logs.setup(snakemake.log[0])
p = snakemake.params
results = [("random", None, json.loads(Path(snakemake.input.random).read_text()))]
for run, path in zip(p.runs, snakemake.input.runs):
    results.append((run["model"], p.losses[run["loss"]], json.loads(Path(path).read_text())))
frame, note = tables.table_one(results), tables.table_note(results)
tables.write_table(frame, Path(snakemake.output.csv).with_suffix(""), caption=p.caption, note=note)
logging.info("Table I:\n%s\n%s", frame.to_markdown(index=False), note)
paper = tables.paper_comparison(results)
tables.write_table(
    paper,
    Path(snakemake.output.paper[1]).with_suffix(""),
    caption=tables.PAPER_CAPTION,
    note=tables.PAPER_NOTE,
)
logging.info("Table I beside the paper's:\n%s", paper.to_markdown(index=False))
for model, loss, res in results:
    if tables.low_background_mc(res["summary"]):
        bkg = res["summary"]["background_mc"]
        logging.warning(
            "%s, %s: trials %s have a score bin with fewer than %s background MC events in its mass "
            "window (fewest %s); marked %s in Table I",
            registry.MODEL_LABELS.get(model, model),
            registry.loss_label(model, loss),
            bkg["low_trials"],
            bkg["threshold"],
            bkg["min_count"],
            tables.LOW_MC_MARK,
        )
