# Feature building: the sigma_m resolution map from signal, then the features of every sample, nominal and
# for every systematic variation through the same rule.


rule resolution_map:
    input:
        skims=get_resolution_map_skims,
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


for variation, outdir in ((NOMINAL, "results/features"), ("{variation}", "results/syst/{variation}/features")):

    rule:
        name:
            "features" if variation == NOMINAL else "features_variation"
        input:
            skims=get_skims,
            cutflows=get_cutflows,
            resolution_map="results/features/resolution_map.json",
        output:
            f"{outdir}/{{sample}}.parquet",
        params:
            sample=get_sample,
            kind=get_kind,
            normalisation=get_normalisation,
            luminosity_fb=config["luminosity_fb"],
            split=config["split"],
        log:
            outdir.replace("results/", "logs/", 1) + "/{sample}.log",
        benchmark:
            (
                "results/benchmarks/features/{sample}.tsv"
                if variation == NOMINAL
                else "results/benchmarks/features_variation/{variation}/{sample}.tsv"
            )
        resources:
            mem_mb=8000,
        conda:
            "../../envs/features.yaml"
        script:
            "../../scripts/features.py"
