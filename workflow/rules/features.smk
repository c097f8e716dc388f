# Feature building: the sigma_m resolution map from signal, then the features of every sample.


rule resolution_map:
    input:
        skims=lambda wc: skims(config["resolution_map"]["sample"]),
    output:
        "results/features/resolution_map.json",
    params:
        eta_edges=config["resolution_map"]["eta_edges"],
        pt_edges=config["resolution_map"]["pt_edges"],
    log:
        "logs/features/resolution_map.log",
    benchmark:
        "results/benchmarks/resolution_map/resolution_map.tsv",
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/resolution_map.py"


rule features:
    input:
        skims=lambda wc: skims(wc.sample),
        cutflows=lambda wc: cutflows(wc.sample),
        resolution_map="results/features/resolution_map.json",
    output:
        "results/features/{sample}.parquet",
    params:
        sample=lambda wc: wc.sample,
        kind=lambda wc: config["samples"][wc.sample]["kind"],
        normalisation=lambda wc: normalisation(wc.sample),
        luminosity_fb=config["luminosity_fb"],
        split=config["split"],
    log:
        "logs/features/{sample}.log",
    benchmark:
        "results/benchmarks/features/{sample}.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/features.py"


rule features_variation:
    input:
        skims=lambda wc: expand("results/syst/{v}/skim/{s}/{c}.root", v=wc.variation, s=wc.sample, c=chunks(wc.sample)),
        cutflows=lambda wc: expand("results/syst/{v}/skim/{s}/{c}.cutflow.json", v=wc.variation, s=wc.sample, c=chunks(wc.sample)),
        resolution_map="results/features/resolution_map.json",
    output:
        "results/syst/{variation}/features/{sample}.parquet",
    params:
        sample=lambda wc: wc.sample,
        kind=lambda wc: config["samples"][wc.sample]["kind"],
        normalisation=lambda wc: normalisation(wc.sample),
        luminosity_fb=config["luminosity_fb"],
        split=config["split"],
    log:
        "logs/syst/{variation}/features/{sample}.log",
    benchmark:
        "results/benchmarks/features_variation/{variation}/{sample}.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/features.py"
