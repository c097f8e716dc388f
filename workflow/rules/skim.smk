# Skim and preselection of every input n-tuple (generated or the user's own), one job per file.


rule skim:
    input:
        ntuple=ntuple_path,
    output:
        skim="results/skim/{sample}/{chunk}.root",
        cutflow="results/skim/{sample}/{chunk}.cutflow.json",
    params:
        branch_map=lambda wc: branch_map(wc.sample),
        cuts=config["selection"],
    log:
        "logs/skim/{sample}/{chunk}.log",
    benchmark:
        "results/benchmarks/skim/{sample}/{chunk}.tsv",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/skim.yaml"
    script:
        "../../scripts/skim.py"


rule cutflow_table:
    input:
        cutflows=lambda wc: [c for s in config["samples"] for c in cutflows(s)],
    output:
        cutflow=multiext("results/tables/cutflow", ".md", ".csv", ".tex"),
        normalisation=multiext("results/tables/normalisation", ".md", ".csv", ".tex"),
    params:
        normalisation={s: normalisation(s) for s in config["samples"]},
        note=NORMALISATION_NOTE,
        luminosity_fb=config["luminosity_fb"],
    log:
        "logs/tables/cutflow.log",
    benchmark:
        "results/benchmarks/cutflow_table/cutflow_table.tsv",
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/cutflow_table.py"


rule skim_variation:
    input:
        ntuple=ntuple_path,
    output:
        skim="results/syst/{variation}/skim/{sample}/{chunk}.root",
        cutflow="results/syst/{variation}/skim/{sample}/{chunk}.cutflow.json",
    params:
        branch_map=lambda wc: branch_map(wc.sample),
        cuts=config["selection"],
        variation=lambda wc: wc.variation,
        sizes=config["fit"]["variations"],
    log:
        "logs/syst/{variation}/skim/{sample}/{chunk}.log",
    benchmark:
        "results/benchmarks/skim_variation/{variation}/{sample}/{chunk}.tsv",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/skim.yaml"
    script:
        "../../scripts/skim.py"
