# Evaluation (paper 000, Sec. IV D-E): per (model, loss) the Table I metrics on the test split of every trial
# and its plots (overtraining, background mllg per score bin, training curves; one job, as the job's cost is
# mostly start-up), the random classifier through the same code, Table I and the ROC curves of all runs.
# Outputs tagged with report() feed `snakemake --report`.

report: "../report/workflow.rst"


rule evaluate:
    input:
        scores=get_run_scores,
        checkpoints=get_run_checkpoints,
        histories=get_run_histories,
    output:
        metrics="results/eval/{model}_{loss}/metrics.json",
        scores=report("results/plots/eval/{model}_{loss}/scores.png", caption="../report/scores.rst",
                      category="Training", subcategory="{model}_{loss}",
                      labels={"run": "{model}_{loss}", "figure": "score distributions"}),
        sculpting=report("results/plots/eval/{model}_{loss}/sculpting.png", caption="../report/sculpting.rst",
                         category="Sculpting", labels={"run": "{model}_{loss}", "figure": "background mllg"}),
        training=report("results/plots/eval/{model}_{loss}/training.png", caption="../report/training.rst",
                        category="Training", subcategory="{model}_{loss}",
                        labels={"run": "{model}_{loss}", "figure": "training curves"}),
        pdfs=multiext("results/plots/eval/{model}_{loss}/", "scores.pdf", "sculpting.pdf", "training.pdf"),
    params:
        evaluation=eval_params(*METRIC_KEYS),
        info=get_run_info,
        trial=PLOT_TRIAL,
        epoch_label=get_epoch_label,
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/eval/{model}_{loss}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}_{loss}.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/evaluate.py"


rule evaluate_random:
    input:
        features=expand("results/features/{sample}.parquet", sample=config["samples"]),
    output:
        "results/eval/random/metrics.json",
    params:
        evaluation=eval_params(*METRIC_KEYS),
        n_trials=config["split"]["n_trials"],
    log:
        "logs/eval/random.log",
    benchmark:
        "results/benchmarks/evaluate_random/random.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/evaluate_random.py"


rule table_one:
    input:
        runs=expand("results/eval/{run}/metrics.json", run=RUNS),
        random="results/eval/random/metrics.json",
    output:
        md="results/tables/table1.md",
        csv=report("results/tables/table1.csv", caption="../report/table1.rst", category="Table I",
                   labels={"figure": "Table I"}),
        tex="results/tables/table1.tex",
    params:
        runs=config["runs"],
        losses=config["losses"],
        caption=f"Table I: mean ± std over {config['split']['n_trials']} trials, test split",
    log:
        "logs/tables/table1.log",
    benchmark:
        "results/benchmarks/table_one/table_one.tsv",
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/table_one.py"


rule roc_plot:
    input:
        scores=expand(f"results/models/{{run}}/trial{PLOT_TRIAL}/scores.parquet", run=RUNS),
    output:
        pdf="results/plots/eval/roc.pdf",
        png=report("results/plots/eval/roc.png", caption="../report/roc.rst", category="Table I",
                   labels={"figure": "ROC curves"}),
    params:
        runs=config["runs"],
        losses=config["losses"],
        window=config["evaluation"]["window"],
        trial=PLOT_TRIAL,
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/plots/roc.log",
    benchmark:
        "results/benchmarks/roc_plot/roc_plot.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/roc_plot.py"
