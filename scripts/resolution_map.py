"""Rule resolution_map: per-object relative pT resolution from signal truth, binned in |eta| and pT."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import io, logs, resolution, samples  # noqa: E402

logs.setup(snakemake.log[0])
cols = samples.read_skims(snakemake.input.skims)
objects = resolution.objects_from_skim(cols)
res_map = resolution.build_map(objects, snakemake.params.eta_edges, snakemake.params.pt_edges)
for name in resolution.OBJECTS:
    logging.info("%s relative resolution per (|eta|, pT) bin:\n%s", name, res_map[name]["width"])
io.write_json(snakemake.output[0], res_map)
