# Feature plots (normalised signal vs background) and the physics sanity checks of the data side.


rule feature_plots:
    input:
        signal=get_signal_features,
        background=get_background_features,
    output:
        expand("{dir}/{stem}.pdf", dir=FEATURE_PLOTS, stem=PLOT_STEMS),
        [
            report(f"{FEATURE_PLOTS}/{file_stem(var)}.png", caption="../report/features.rst",
                   category="Features", labels={"feature": var})
            for var in PLOT_VARIABLES
        ],
    params:
        variables=PLOT_VARIABLES,
        n_bins=config["plots"]["n_bins"],
        mllg_range=[config["selection"]["mllg_min"], config["selection"]["mllg_max"]],
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
        outdir=FEATURE_PLOTS,
    log:
        "logs/plots/features.log",
    benchmark:
        benchmark_file("feature_plots", "feature_plots"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/feature_plots.py"


rule physics_checks:
    input:
        signal=get_signal_features,
        background=get_background_features,
        cutflows=get_all_cutflows,
        resolution_map=RESOLUTION_MAP,
    output:
        json="results/checks/physics.json",
        table=table_files("physics_checks", "physics_checks.rst", "Selection", "physics checks"),
    params:
        samples={s: v["kind"] for s, v in config["samples"].items()},
        caption=rst_escape(PHYSICS_CHECKS_CAPTION),  # the table's caption and note, for the report's caption
        note=rst_escape(PHYSICS_CHECKS_NOTE),
    log:
        "logs/checks/physics.log",
    benchmark:
        benchmark_file("physics_checks", "physics_checks"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/physics_checks.py"
