# Binned profile-likelihood fits (pyhf, cabinetry): per-category smooth background, spurious signal, mu, Z, limit.


rule fit:
    input:
        unpack(get_fit_inputs),
    output:
        workspace="results/fit/{model}_{loss}/workspace.json",
        fit="results/fit/{model}_{loss}/fit.json",
        templates="results/fit/{model}_{loss}/templates.json",
    params:
        fit=config["fit"],
        reprocessed=REPROCESSED,
    log:
        "logs/fit/{model}_{loss}.log",
    benchmark:
        "results/benchmarks/fit/{model}_{loss}.tsv",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


rule fit_plots:
    input:
        workspace="results/fit/{model}_{loss}/workspace.json",
        fit="results/fit/{model}_{loss}/fit.json",
    output:
        prefit=expand("results/plots/fit/{{model}}_{{loss}}/prefit_{cat}.{ext}", cat=range(config["fit"]["n_score_bins"]),
                      ext=["pdf", "png"]),
        postfit=expand("results/plots/fit/{{model}}_{{loss}}/postfit_{cat}.{ext}", cat=range(config["fit"]["n_score_bins"]),
                       ext=["pdf", "png"]),
        scan=report("results/plots/fit/{model}_{loss}/scan.png", caption="../report/fit.rst", category="Fit",
                    subcategory="{model}_{loss}", labels={"run": "{model}_{loss}", "figure": "likelihood scan"}),
        pulls=report("results/plots/fit/{model}_{loss}/pulls.png", caption="../report/fit.rst", category="Fit",
                     subcategory="{model}_{loss}", labels={"run": "{model}_{loss}", "figure": "pulls"}),
        ranking=report("results/plots/fit/{model}_{loss}/ranking.png", caption="../report/fit.rst", category="Fit",
                       subcategory="{model}_{loss}", labels={"run": "{model}_{loss}", "figure": "ranking"}),
        pdfs=multiext("results/plots/fit/{model}_{loss}/", "scan.pdf", "pulls.pdf", "ranking.pdf"),
    params:
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
        outdir=get_fit_plot_dir,
    log:
        "logs/fit/{model}_{loss}.plots.log",
    benchmark:
        "results/benchmarks/fit_plots/{model}_{loss}.tsv",
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_plots.py"


rule fit_table:
    input:
        fits=expand("results/fit/{run}/fit.json", run=RUNS),
        metrics=expand("results/eval/{run}/metrics.json", run=RUNS),
    output:
        fit=multiext("results/tables/fit", ".md", ".csv", ".tex"),
        spurious=multiext("results/tables/spurious_signal", ".md", ".csv", ".tex"),
    params:
        runs=RUNS,
        trial=config["fit"]["trial"],
    log:
        "logs/tables/fit.log",
    benchmark:
        "results/benchmarks/fit_table/fit_table.tsv",
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_table.py"
