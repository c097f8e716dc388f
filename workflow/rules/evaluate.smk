# Evaluation (paper 000, Sec. IV D-E): per (model, loss) the Table I metrics on the test split of every trial
# and its plots (overtraining, background mllg per score bin, training curves; one job, as the job's cost is
# mostly start-up), the random classifier through the same code, Table I and the ROC curves of all runs
# (one trial, and all trials as bands); for the networks with attention, their mean attention maps and
# Grad-CAM attribution (rule interpret).
# Outputs tagged with report() feed `snakemake --report`.

report: "../report/workflow.rst"


rule evaluate:
    input:
        scores=get_run_scores,
        checkpoints=get_run_checkpoints,
        histories=get_run_histories,
    output:
        metrics=f"{eval_dir()}/metrics.json",
        scores=report(f"{eval_plot_dir()}/scores.png", caption="../report/scores.rst",
                      category="Training", subcategory="{model}_{loss}",
                      labels={"run": "{model}_{loss}", "figure": "score distributions"}),
        sculpting=report(f"{eval_plot_dir()}/sculpting.png", caption="../report/sculpting.rst",
                         category="Sculpting", labels={"run": "{model}_{loss}", "figure": "background mllg"}),
        training=report(f"{eval_plot_dir()}/training.png", caption="../report/training.rst",
                        category="Training", subcategory="{model}_{loss}",
                        labels={"run": "{model}_{loss}", "figure": "training curves"}),
        training_bands=report(f"{eval_plot_dir()}/training_bands.png", caption="../report/training_bands.rst",
                              category="Training", subcategory="{model}_{loss}",
                              labels={"run": "{model}_{loss}", "figure": "training curves, band"}),
        pdfs=multiext(f"{eval_plot_dir()}/", "scores.pdf", "sculpting.pdf", "training.pdf",
                      "training_bands.pdf"),
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
        benchmark_file("evaluate", "{model}_{loss}"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/evaluate.py"


rule interpret:
    # the networks with attention (ATTENTION_MODELS): mean attention maps and Grad-CAM attribution of signal
    # and background, test split of the plot trial (hzg.results.interpret)
    input:
        checkpoint=get_plot_checkpoint,
        features=expand("{dir}/{sample}.parquet", dir=FEATURES_DIR, sample=config["samples"]),
    output:
        attention=report(f"{eval_plot_dir()}/attention.png", caption="../report/attention.rst",
                         category="Interpretation", subcategory="{model}_{loss}",
                         labels={"run": "{model}_{loss}", "figure": "attention maps"}),
        gradcam=report(f"{eval_plot_dir()}/gradcam.png", caption="../report/gradcam.rst",
                       category="Interpretation", subcategory="{model}_{loss}",
                       labels={"run": "{model}_{loss}", "figure": "Grad-CAM attribution"}),
        pdfs=multiext(f"{eval_plot_dir()}/", "attention.pdf", "gradcam.pdf"),
    wildcard_constraints:
        model="|".join(ATTENTION_MODELS),
    params:
        info=get_run_info,
        trial=PLOT_TRIAL,
        window=config["evaluation"]["window"],
        objects=config.get("objects"),
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/eval/{model}_{loss}.interpret.log",
    benchmark:
        benchmark_file("interpret", "{model}_{loss}"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/interpret.py"


rule evaluate_random:
    input:
        features=expand("{dir}/{sample}.parquet", dir=FEATURES_DIR, sample=config["samples"]),
    output:
        f"{eval_dir(RANDOM)}/metrics.json",
    params:
        evaluation=eval_params(*METRIC_KEYS),
        n_trials=config["split"]["n_trials"],
    log:
        "logs/eval/random.log",
    benchmark:
        benchmark_file("evaluate_random", "random"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/evaluate_random.py"


rule table_one:
    input:
        runs=[f"{eval_dir(run)}/metrics.json" for run in RUNS],
        random=f"{eval_dir(RANDOM)}/metrics.json",
    output:
        md=f"{TABLES_DIR}/table1.md",
        csv=report(f"{TABLES_DIR}/table1.csv", caption="../report/table1.rst", category="Table I",
                   labels={"figure": "Table I"}),
        tex=f"{TABLES_DIR}/table1.tex",
        paper=table_files("table1_paper", "table1_paper.rst", "Table I", "Table I beside the paper",
                          label_key="figure"),
    params:
        runs=config["runs"],
        losses=config["losses"],
        caption=f"Table I: mean ± std over {config['split']['n_trials']} trials, test split",
        columns=rst_escape(TABLE_ONE_COLUMNS),  # for the report's caption (table1.rst); the script writes its own
        paper_caption=rst_escape(PAPER_CAPTION),  # for table1_paper.rst
        paper_note=rst_escape(PAPER_NOTE),
    log:
        "logs/tables/table1.log",
    benchmark:
        benchmark_file("table_one", "table_one"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/table_one.py"


rule roc_plot:
    input:
        scores=trained("scores.parquet"),  # run by run, trial by trial
    output:
        pdf=f"{EVAL_PLOTS}/roc.pdf",
        png=report(f"{EVAL_PLOTS}/roc.png", caption="../report/roc.rst", category="Table I",
                   labels={"figure": "ROC curves"}),
        trials_pdf=f"{EVAL_PLOTS}/roc_trials.pdf",
        trials_png=report(f"{EVAL_PLOTS}/roc_trials.png", caption="../report/roc_trials.rst",
                          category="Table I", labels={"figure": "ROC curves, all trials"}),
    params:
        runs=config["runs"],
        losses=config["losses"],
        window=config["evaluation"]["window"],
        trial=PLOT_TRIAL,
        n_trials=config["split"]["n_trials"],
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/plots/roc.log",
    benchmark:
        benchmark_file("roc_plot", "roc_plot"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/roc_plot.py"
