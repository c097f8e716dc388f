"""Rule table_one: Table I of the paper (mean ± std over trials of every run and the random classifier)."""
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import evaluation, logs, tables  # noqa: E402

logs.setup(snakemake.log[0])
p = snakemake.params
results = [("random", None, json.loads(Path(snakemake.input.random).read_text()))]
for run, path in zip(p.runs, snakemake.input.runs):
    results.append((run["model"], p.losses[run["loss"]], json.loads(Path(path).read_text())))
frame = evaluation.table_one(results)
tables.write_table(frame, Path(snakemake.output.csv).with_suffix(""), caption=p.caption)
logging.info("Table I:\n%s", frame.to_markdown(index=False))
