# Time and memory of the run: every rule writes a Snakemake benchmark file (wall time, CPU time, max RSS)
# under results/benchmarks/{rule}/...; this rule, which runs after every other output, sums them per rule
# and per stage.


rule benchmark_table:
    input:
        all_outputs(),
    output:
        rules=table_files("benchmarks", "benchmarks.rst", "Benchmarks", "per rule"),
        stages=table_files("benchmark_stages", "benchmarks.rst", "Benchmarks", "per stage"),
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
