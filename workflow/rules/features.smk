# Feature building: the sigma_m resolution map from signal, then the features of every sample, nominal and
# for every systematic variation through the same rule.


rule resolution_map:
    input:
        skims=get_resolution_map_skims,
    output:
        RESOLUTION_MAP,
    params:
        eta_edges=config["resolution_map"]["eta_edges"],
        pt_edges=config["resolution_map"]["pt_edges"],
    log:
        "logs/features/resolution_map.log",
    benchmark:
        benchmark_file("resolution_map", "resolution_map"),
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/resolution_map.py"


for variation in (NOMINAL, "{variation}"):
    outdir = features_dir(variation)

    rule:
        name:
            "features" if variation == NOMINAL else "features_variation"
        input:
            skims=get_skims,
            cutflows=get_cutflows,
            resolution_map=RESOLUTION_MAP,
        output:
            f"{outdir}/{{sample}}.parquet",
        params:
            sample=get_sample,
            kind=get_kind,
            normalisation=get_normalisation,
            luminosity_fb=config["luminosity_fb"],
            split=config["split"],
            objects=OBJECTS,
        log:
            outdir.replace("results/", "logs/", 1) + "/{sample}.log",
        benchmark:
            (
                benchmark_file("features", "{sample}")
                if variation == NOMINAL
                else benchmark_file("features_variation", "{variation}/{sample}")
            )
        resources:
            mem_mb=8000,
        conda:
            "../../envs/features.yaml"
        script:
            "../../scripts/features.py"
