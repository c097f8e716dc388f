# Binned profile-likelihood fits (pyhf, cabinetry): per-category smooth background, spurious signal, mu, Z,
# limit.

#: the spurious-signal test's criterion and MC tolerance (config fit.background), for the fit table and its notes
SPURIOUS_CRITERION = config["fit"]["background"]["spurious_criterion"]
SPURIOUS_MC_TOLERANCE = config["fit"]["background"]["spurious_mc_tolerance"]


rule fit:
    input:
        unpack(get_fit_inputs),
    output:
        workspace=f"{fit_dir()}/workspace.json",
        fit=f"{fit_dir()}/fit.json",
        templates=f"{fit_dir()}/templates.json",
    params:
        fit=config["fit"],
        reprocessed=REPROCESSED,
    log:
        "logs/fit/{model}_{loss}.log",
    benchmark:
        benchmark_file("fit", "{model}_{loss}"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


rule fit_plots:
    input:
        workspace=f"{fit_dir()}/workspace.json",
        fit=f"{fit_dir()}/fit.json",
        templates=f"{fit_dir()}/templates.json",
    output:
        prefit=expand(f"{fit_plot_dir()}/prefit_{{cat}}.{{ext}}", cat=range(config["fit"]["n_score_bins"]),
                      ext=["pdf", "png"], allow_missing=True),
        postfit=[
            *expand(f"{fit_plot_dir()}/postfit_{{cat}}.pdf", cat=range(config["fit"]["n_score_bins"]),
                    allow_missing=True),
            *(
                report(f"{fit_plot_dir()}/postfit_{cat}.png", caption="../report/fit_mass.rst", category="Fit",
                       subcategory="{model}_{loss}",
                       labels={"run": "{model}_{loss}", "figure": f"post-fit mllg, category bin{cat}"})
                for cat in range(config["fit"]["n_score_bins"])
            ),
        ],
        scan=report(f"{fit_plot_dir()}/scan.png", caption="../report/fit.rst", category="Fit",
                    subcategory="{model}_{loss}",
                    labels={"run": "{model}_{loss}", "figure": "likelihood scan"}),
        pulls=report(f"{fit_plot_dir()}/pulls.png", caption="../report/fit.rst", category="Fit",
                     subcategory="{model}_{loss}", labels={"run": "{model}_{loss}", "figure": "pulls"}),
        ranking=report(f"{fit_plot_dir()}/ranking.png", caption="../report/fit.rst", category="Fit",
                       subcategory="{model}_{loss}", labels={"run": "{model}_{loss}", "figure": "ranking"}),
        pdfs=multiext(f"{fit_plot_dir()}/", "scan.pdf", "pulls.pdf", "ranking.pdf"),
    params:
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
        outdir=get_fit_plot_dir,
    log:
        "logs/fit/{model}_{loss}.plots.log",
    benchmark:
        benchmark_file("fit_plots", "{model}_{loss}"),
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_plots.py"


rule fit_table:
    input:
        fits=[f"{fit_dir(run)}/fit.json" for run in RUNS],
        metrics=[f"{eval_dir(run)}/metrics.json" for run in RUNS],
    output:
        fit=table_files("fit", "fit_table.rst", "Fit", "fit results", subcategory="Tables"),
        spurious=table_files("spurious_signal", "spurious_signal.rst", "Fit", "spurious signal",
                             subcategory="Tables"),
    params:
        runs=RUNS,
        trial=config["fit"]["trial"],
        spurious_criterion=SPURIOUS_CRITERION,
        spurious_mc_tolerance=SPURIOUS_MC_TOLERANCE,
        # the tables' captions and notes, for the report's captions (fit_table.rst, spurious_signal.rst)
        fit_caption=rst_escape(FIT_CAPTION),
        spurious_caption=rst_escape(spurious_caption(SPURIOUS_CRITERION, SPURIOUS_MC_TOLERANCE)),
        fit_note=rst_escape(fit_table_note(config["fit"]["trial"], SPURIOUS_CRITERION, SPURIOUS_MC_TOLERANCE)),
        spurious_note=rst_escape(SPURIOUS_NOTE),
    log:
        "logs/tables/fit.log",
    benchmark:
        benchmark_file("fit_table", "fit_table"),
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_table.py"
