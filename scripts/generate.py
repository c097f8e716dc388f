"""Rule generate: Pythia 8 + detector response for one (sample, chunk) -> NanoAOD-like n-tuple."""

from hzg import io, logs
from hzg.data import generate

logs.setup(snakemake.log[0])
p = snakemake.params
chunk = int(snakemake.wildcards.chunk)
spec = generate.chunk_spec(
    p.process, p.n_events, generate.chunk_seed(p.sample_seed, chunk), p.generation, p.sqrt_s_tev
)
io.write_root(snakemake.output.ntuple, generate.simulate_chunk(spec, dict(p.detector), chunk))
