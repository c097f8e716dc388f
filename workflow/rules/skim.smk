# Skim and preselection of every input n-tuple (generated or the user's own), one job per file; the nominal
# and every systematic variation (photon energy scale up/down, hzg.registry.VARIATIONS) through the same rule.


for variation in (NOMINAL, "{variation}"):
    outdir = skim_dir(variation)

    rule:
        name:
            "skim" if variation == NOMINAL else "skim_variation"
        input:
            ntuple=get_ntuple,
        output:
            skim=f"{outdir}/{{sample}}/{{chunk}}.root",
            cutflow=f"{outdir}/{{sample}}/{{chunk}}.cutflow.json",
        params:
            branch_map=get_branch_map,
            cuts=config["selection"],
            objects=OBJECTS,
            variation=get_variation,
            sizes=get_variation_sizes,
        log:
            outdir.replace("results/", "logs/", 1) + "/{sample}/{chunk}.log",
        benchmark:
            (
                benchmark_file("skim", "{sample}/{chunk}")
                if variation == NOMINAL
                else benchmark_file("skim_variation", "{variation}/{sample}/{chunk}")
            )
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            "../../envs/skim.yaml"
        script:
            "../../scripts/skim.py"


rule cutflow_table:
    input:
        cutflows=get_all_cutflows,
    output:
        cutflow=table_files("cutflow", "cutflow.rst", "Selection", "cutflow"),
        normalisation=table_files("normalisation", "normalisation.rst", "Selection", "normalisation"),
    params:
        normalisation={s: normalisation(s) for s in config["samples"]},
        note=NORMALISATION_NOTE,
        luminosity_fb=config["luminosity_fb"],
    log:
        "logs/tables/cutflow.log",
    benchmark:
        benchmark_file("cutflow_table", "cutflow_table"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/cutflow_table.py"
