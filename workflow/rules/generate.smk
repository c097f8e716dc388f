# Monte Carlo generation: Pythia 8 + parametric detector response, one job per (sample, chunk).


rule generate:
    output:
        ntuple="results/mc/{sample}/{chunk}.root",
    params:
        process=lambda wc: config["samples"][wc.sample]["generate"]["process"],
        n_events=lambda wc: chunk_events(wc.sample, wc.chunk),
        sample_seed=lambda wc: config["samples"][wc.sample]["generate"]["seed"],
        generation=config["generation"],
        detector=config["detector"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/generate/{sample}/{chunk}.log",
    benchmark:
        "results/benchmarks/generate/{sample}/{chunk}.tsv",
    threads: 1
    resources:
        runtime=lambda wc: 30 + chunk_events(wc.sample, wc.chunk) // 20000,
        mem_mb=4000,
    conda:
        "../../envs/generate.yaml"
    script:
        "../../scripts/generate.py"
