"""Rule resolution_map: per-object relative pT resolution from signal truth, binned in |eta| and pT,
calibrated so that the signal pull (m_llg - 125 GeV) / sigma_m has unit width in every bin."""

import logging

from hzg import io, logs
from hzg.data import resolution, samples

logs.setup(snakemake.log[0])
cols = samples.read_skims(snakemake.input.skims)
objects = resolution.objects_from_skim(cols)
raw_map = resolution.build_map(objects, snakemake.params.eta_edges, snakemake.params.pt_edges)
res_map = resolution.calibrate(cols, raw_map)
calib = res_map["calibration"]
for name in resolution.OBJECTS:
    logging.info(
        "%s relative resolution per (|eta|, pT) bin, from truth:\n%s\ncalibration factors:\n%s",
        name,
        res_map[name]["raw_width"],
        res_map[name]["calibration"],
    )
    logging.info(
        "%s: signal pull half-width per bin before %s, after %s",
        name,
        calib["pull_width_before"][name]["width"],
        calib["pull_width_after"][name]["width"],
    )
logging.info(
    "signal pull (m_llg - %.0f GeV) / sigma_m: half-width %.3f before, %.3f after (%d iterations); "
    "median sigma_m %.3f -> %.3f GeV",
    calib["reference_mass_gev"],
    calib["pull_width_before"]["all"],
    calib["pull_width_after"]["all"],
    calib["iterations"],
    calib["sigma_m_median_gev_before"],
    calib["sigma_m_median_gev_after"],
)
io.write_json(snakemake.output[0], res_map)
