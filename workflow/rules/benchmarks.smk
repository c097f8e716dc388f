# Time and memory of the run: every rule writes a Snakemake benchmark file (wall time, CPU time, max RSS)
# under results/benchmarks/{rule}/...; this rule, which runs after every other output, sums them per rule
# and per stage.

BENCHMARKS = "results/benchmarks"


rule benchmark_table:
    input:
        all_outputs(),
    output:
        rules=[
            "results/tables/benchmarks.md",
            report("results/tables/benchmarks.csv", caption="../report/benchmarks.rst", category="Benchmarks",
                   labels={"table": "per rule"}),
            "results/tables/benchmarks.tex",
        ],
        stages=[
            "results/tables/benchmark_stages.md",
            report("results/tables/benchmark_stages.csv", caption="../report/benchmarks.rst", category="Benchmarks",
                   labels={"table": "per stage"}),
            "results/tables/benchmark_stages.tex",
        ],
    params:
        root=BENCHMARKS,
    log:
        "logs/tables/benchmarks.log",
    benchmark:
        "results/benchmarks/benchmark_table/benchmark_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/benchmark_table.py"
