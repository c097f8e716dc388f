# Monte Carlo generation: Pythia 8 + parametric detector response, one job per (sample, chunk).


rule generate:
    output:
        ntuple="results/mc/{sample}/{chunk}.root",
    params:
        process=get_process,
        n_events=get_chunk_events,
        sample_seed=get_sample_seed,
        generation=config["generation"],
        detector=config["detector"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/generate/{sample}/{chunk}.log",
    benchmark:
        benchmark_file("generate", "{sample}/{chunk}"),
    threads: 1
    resources:
        runtime=get_generate_runtime,
        mem_mb=4000,
    conda:
        "../../envs/generate.yaml"
    script:
        "../../scripts/generate.py"
