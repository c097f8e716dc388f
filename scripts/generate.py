"""Rule generate: Pythia 8 + detector response for one (sample, chunk) -> NanoAOD-like n-tuple."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import generate, io, logs  # noqa: E402

logs.setup(snakemake.log[0])
p = snakemake.params
chunk = int(snakemake.wildcards.chunk)
spec = generate.ChunkSpec(
    process=p.process, n_events=int(p.n_events), seed=generate.chunk_seed(p.sample_seed, chunk),
    level=p.generation["level"], sqrt_s_tev=p.sqrt_s_tev, z_mass_min=p.generation["z_mass_min"],
    pthat_min=p.generation["pthat_min"], mhat_min=p.generation["mhat_min"],
)
io.write_root(snakemake.output.ntuple, generate.simulate_chunk(spec, dict(p.detector), chunk))
