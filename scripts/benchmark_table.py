"""Rule benchmark_table: every job's benchmark file -> time and memory per rule and per stage (Markdown, CSV,
LaTeX)."""

import logging
from pathlib import Path

from hzg import logs
from hzg.results import benchmarks, tables

logs.setup(snakemake.log[0])
root = Path(snakemake.params.root)
jobs = benchmarks.read_benchmarks(root.rglob("*.tsv"), root)
note = (
    "Wall time summed over the jobs of a rule (not the run's elapsed time when jobs run in parallel). "
    "CPU time and max RSS as Snakemake's benchmark directive samples them "
    "(psutil, every second for the first "
    "30 s of a job, then every 30 s: a lower bound, short jobs undercounted). Per-job files under "
    f"{root}/."
)
per_rule = benchmarks.rule_frame(jobs)
per_stage = benchmarks.stage_frame(jobs)
tables.write_table(
    per_rule, Path(snakemake.output.rules[0]).with_suffix(""), caption="Time and memory per rule", note=note
)
tables.write_table(
    per_stage,
    Path(snakemake.output.stages[0]).with_suffix(""),
    caption="Time and memory per stage",
    note=note,
)
logging.info("per stage:\n%s", per_stage.to_markdown(index=False, floatfmt=".1f"))
logging.info("per rule:\n%s", per_rule.to_markdown(index=False, floatfmt=".1f"))
