"""Rule generate_mass_point: Pythia 8 + detector response for one chunk of a mass point of the mass scan."""

from hzg import io, logs
from hzg.data import generate

logs.setup(snakemake.log[0])
p = snakemake.params
chunk = int(snakemake.wildcards.chunk)
seed = generate.chunk_seed(p.sample_seed, chunk)
spec = generate.chunk_spec(p.process, p.n_events, seed, p.generation, p.sqrt_s_tev, higgs_mass=p.higgs_mass)
io.write_root(snakemake.output.ntuple, generate.simulate_chunk(spec, dict(p.detector), chunk))
