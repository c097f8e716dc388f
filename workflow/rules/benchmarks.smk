# Time and memory of the run: every rule writes a Snakemake benchmark file (wall time, CPU time, max RSS)
# under results/benchmarks/{rule}/...; this rule, which runs after every other output, sums them per rule
# and per stage.


rule benchmark_table:
    input:
        all_outputs(),
    output:
        rules=[
            f"{TABLES_DIR}/benchmarks.md",
            report(f"{TABLES_DIR}/benchmarks.csv", caption="../report/benchmarks.rst",
                   category="Benchmarks", labels={"table": "per rule"}),
            f"{TABLES_DIR}/benchmarks.tex",
        ],
        stages=[
            f"{TABLES_DIR}/benchmark_stages.md",
            report(f"{TABLES_DIR}/benchmark_stages.csv", caption="../report/benchmarks.rst",
                   category="Benchmarks", labels={"table": "per stage"}),
            f"{TABLES_DIR}/benchmark_stages.tex",
        ],
    params:
        root=BENCHMARKS,
    log:
        "logs/tables/benchmarks.log",
    benchmark:
        benchmark_file("benchmark_table", "benchmark_table")
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/benchmark_table.py"
