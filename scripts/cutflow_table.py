"""Rule cutflow_table: sum the per-chunk cutflows of every sample -> Markdown, CSV, LaTeX."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import logs, samples, tables  # noqa: E402

logs.setup(snakemake.log[0])
flows, yield_per_weight = samples.merge_cutflows(snakemake.input.cutflows, snakemake.params.xsec_pb,
                                                  snakemake.params.luminosity_fb)
frame = tables.cutflow_frame(flows, yield_per_weight)
tables.write_table(frame, Path(snakemake.output[0]).with_suffix(""),
                   caption=f"Cutflow: raw MC events and expected events for {snakemake.params.luminosity_fb:g}/fb")
logging.info("cutflow:\n%s", frame.to_markdown(index=False, floatfmt=".1f"))
