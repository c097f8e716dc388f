# Mass scan (seed paper 004, config/mass_scan.yaml): signal generated at other Higgs masses (samples
# signal_m<mass>, hzg.data.mass_scan), skimmed and featured by the usual rules; the runs of `mass_scan.runs`
# evaluated at every mass point (AUC, binned significance, background correlation; hzg.results.mass_scan), one
# table and one plot. Nothing here runs without the config block `mass_scan`.
from hzg.data.mass_scan import nominal_mass, sample_masses
from hzg.registry import run_title


rule generate_mass_point:
    # as rule generate, for a sample that sets its Higgs mass (generate.higgs_mass: the mass points, or a sample
    # of `samples`); a separate rule, so that the default's generation jobs keep their params and script
    output:
        ntuple=MASS_SCAN_MC + "/{sample}/{chunk}.root",
    wildcard_constraints:
        sample="|".join(MASS_POINT_SAMPLES) or "(?!)",
    params:
        process=get_process,
        n_events=get_chunk_events,
        sample_seed=get_sample_seed,
        higgs_mass=lambda wildcards: SAMPLE_SPECS[wildcards.sample]["generate"]["higgs_mass"],
        generation=config["generation"],
        detector=config["detector"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/generate/{sample}/{chunk}.log",
    benchmark:
        benchmark_file("generate", "{sample}/{chunk}"),
    threads: 1
    resources:
        runtime=get_generate_runtime,
        mem_mb=4000,
    conda:
        "../../envs/generate.yaml"
    script:
        "../../scripts/generate_mass_point.py"


def mass_scan_params(wildcards=None):
    """The evaluation keys a per-mass-point evaluation uses (only these rerun it)."""
    return {
        "n_score_bins": config["evaluation"]["n_score_bins"],
        "mass_bins": config["evaluation"]["mass_bins"],
        "window_relative": config["mass_scan"].get("window_relative", 0.04),
    }


def mass_scan_runs():
    return config["mass_scan"]["runs"] if "mass_scan" in config else []


def mass_scan_run_files(pattern):
    """Input function: one file per run of mass_scan.runs (pattern: a function of the run name)."""
    return lambda wildcards: [pattern(run) for run in mass_scan_runs()]


def get_scan_features(wildcards):
    """The features of every sample and of every mass point."""
    return expand("{dir}/{s}.parquet", dir=FEATURES_DIR, s=list(config["samples"]) + list(SCAN_SAMPLES))


def get_scan_title(wildcards):
    return run_title(wildcards.model, config["losses"][wildcards.loss])


rule evaluate_mass_scan:
    input:
        checkpoints=get_run_checkpoints,
        features=get_scan_features,
    output:
        f"{MASS_SCAN_DIR}/{{model}}_{{loss}}.json",
    params:
        evaluation=mass_scan_params,
        sample_masses=lambda wildcards: sample_masses(config),
        nominal_mass=lambda wildcards: nominal_mass(config),
        title=get_scan_title,
    log:
        "logs/mass_scan/{model}_{loss}.log",
    benchmark:
        benchmark_file("evaluate_mass_scan", "{model}_{loss}"),
    resources:
        mem_mb=8000,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/evaluate_mass_scan.py"


rule mass_scan_summary:
    input:
        runs=mass_scan_run_files(lambda run: f"{MASS_SCAN_DIR}/{run}.json"),
        metrics=mass_scan_run_files(lambda run: f"{eval_dir(run)}/metrics.json"),
        fits=mass_scan_run_files(lambda run: f"{fit_dir(run)}/fit.json"),
    output:
        md=f"{TABLES_DIR}/mass_scan.md",
        sculpting=f"{TABLES_DIR}/mass_scan_sculpting.csv",
        csv=report(f"{TABLES_DIR}/mass_scan.csv", caption="../report/mass_scan.rst", category="Mass scan",
                   labels={"figure": "per mass point"}),
        pdf=f"{MASS_SCAN_PLOTS}/performance.pdf",
        png=report(f"{MASS_SCAN_PLOTS}/performance.png", caption="../report/mass_scan.rst",
                   category="Mass scan", labels={"figure": "AUC and significance vs m_H"}),
    params:
        runs=lambda wildcards: mass_scan_runs(),
        window_relative=lambda wildcards: mass_scan_params()["window_relative"],
        caption=f"Mass scan: mean ± std over {config['split']['n_trials']} trials, test split",
        luminosity_fb=config["luminosity_fb"],
        sqrt_s_tev=config["sqrt_s_tev"],
    log:
        "logs/mass_scan/summary.log",
    benchmark:
        benchmark_file("mass_scan_summary", "summary"),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/mass_scan_summary.py"
