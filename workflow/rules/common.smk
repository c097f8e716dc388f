# Helpers shared by the rules: samples, chunks and paths. Pure functions of the config.
from hzg.data.features import DISCO_FEATURES, feature_set, file_stem
from hzg.data.mass_scan import reads_scan_samples, run_scan_spec, scan_samples
from hzg.data.objects import n_objects
from hzg.learn.classes import multiclass_spec, reads_multiclass_samples
from hzg.registry import (
    ATTENTION_MODELS,
    DIRECTIONS,
    JET_MODELS,
    MODELS,
    NOMINAL,
    OBJECT_MODELS,
    RANDOM,
    TREE_MODELS,
    VARIATIONS,
    epoch_label,
    loss_options,
    model_training,
    result_training,
    run_names,
)
from hzg.results.tables import (
    FIT_CAPTION,
    PAPER_CAPTION,
    PAPER_NOTE,
    PHYSICS_CHECKS_CAPTION,
    PHYSICS_CHECKS_NOTE,
    SPURIOUS_NOTE,
    TABLE_ONE_COLUMNS,
    fit_table_note,
    rst_escape,
    spurious_caption,
)


#: the 12 classifier inputs, sigma_m in GeV or as sigma_m/m (config features.sigma_m)
INPUT_FEATURES = list(feature_set(config["features"]["sigma_m"]))
PLOT_VARIABLES = INPUT_FEATURES + list(DISCO_FEATURES) + ["mllg"]
#: file stems of their plots, unique regardless of case
PLOT_STEMS = [file_stem(var) for var in PLOT_VARIABLES]
#: "<model>_<loss>" of every run of the grid, in config order
RUNS = run_names(config["runs"])
#: the signal samples of the mass scan (config mass_scan, seed paper 004; hzg.data.mass_scan): generated,
#: skimmed and featured like every sample, read only by the runs of a munn or pnn loss and the per-mass-point
#: evaluation (workflow/rules/mass_scan.smk); `samples` stay the analysis' samples
SCAN_SAMPLES = scan_samples(config)
#: every sample's spec, the analysis' and the mass scan's: what the per-sample rules look up
#: samples only the multiclass runs read (hzg.learn.classes): generated, skimmed and featured like every sample
CLASS_SAMPLES = config.get("multiclass_samples") or {}
SAMPLE_SPECS = {**config["samples"], **SCAN_SAMPLES, **CLASS_SAMPLES}
#: the generated samples that set their Higgs mass (generate.higgs_mass): made by rule generate_mass_point
MASS_POINT_SAMPLES = [s for s, v in SAMPLE_SPECS.items() if "higgs_mass" in v.get("generate", {})]
#: the runs whose model has attention (ETN, FT-Transformer): attention maps and Grad-CAM (rule interpret)
ATTENTION_RUNS = run_names([r for r in config["runs"] if r["model"] in ATTENTION_MODELS])

# ---------------------------------------------------------------- output folders, each given once
# Folders of a run take wildcards by default ("{model}_{loss}", "{trial}") for the rules' outputs, or values.
FEATURES_DIR = "results/features"
SYST_DIR = "results/syst"
#: the object block (config `objects`) of the skim, features and friend trees, and the jet features made from
#: it, only where a run reads objects or jet features (an object or jet model): the other configurations
#: neither pay for it nor see their params change
OBJECTS = (
    config["objects"]
    if any(r["model"] in (*OBJECT_MODELS, *JET_MODELS) for r in config["runs"])
    else None
)
TABLES_DIR = "results/tables"
BENCHMARKS = "results/benchmarks"
EVAL_PLOTS = "results/plots/eval"
FEATURE_PLOTS = "results/plots/features"
RESOLUTION_MAP = f"{FEATURES_DIR}/resolution_map.json"


def run_dir(run="{model}_{loss}", trial="{trial}"):
    """Folder of one trained (model, loss, trial): checkpoint.pt, history.csv, scores.parquet."""
    return f"results/models/{run}/trial{trial}"


def eval_dir(run="{model}_{loss}"):
    """Folder of a run's evaluation (metrics.json)."""
    return f"results/eval/{run}"


def eval_plot_dir(run="{model}_{loss}"):
    """Folder of a run's evaluation plots."""
    return f"{EVAL_PLOTS}/{run}"


def fit_dir(run="{model}_{loss}"):
    """Folder of a run's fit (workspace, fit result, templates)."""
    return f"results/fit/{run}"


def fit_plot_dir(run="{model}_{loss}"):
    """Folder of a run's fit plots."""
    return f"results/plots/fit/{run}"


def table_files(stem, caption, category, label, subcategory=None, label_key="table"):
    """A table's three files under TABLES_DIR, [stem.md, stem.csv, stem.tex] (`hzg.results.tables.write_table`
    writes them), the CSV marked for the report under `category` (and `subcategory`), labelled `label` under
    `label_key` (the key the category's other results use: "figure" in Table I's, beside the ROC curves)."""
    csv = f"{TABLES_DIR}/{stem}.csv"
    marked = report(csv, caption=f"../report/{caption}", category=category, subcategory=subcategory,
                    labels={label_key: label})
    return [f"{TABLES_DIR}/{stem}.md", marked, f"{TABLES_DIR}/{stem}.tex"]


def benchmark_file(rule_name, stem):
    """A job's Snakemake benchmark file, results/benchmarks/{rule}/{stem}.tsv (benchmark_table sums them)."""
    return f"{BENCHMARKS}/{rule_name}/{stem}.tsv"


def get_epoch_label(wildcards):
    """x-axis label of a run's training curves (epochs, boosting rounds or trees)."""
    return epoch_label(wildcards.model)


def is_generated(sample):
    return "generate" in SAMPLE_SPECS[sample]


def normalisation(sample):
    """How a sample's weights are normalised: {"xsec_pb": σ} or {"k_factor": k} (× the generator's σ)."""
    spec = SAMPLE_SPECS[sample]
    return {key: spec[key] for key in ("xsec_pb", "k_factor") if key in spec}


NORMALISATION_NOTE = (
    "Signal: the default takes 6.00 fb, the paper's selected yield of 208 events (9 M of 45 M x 7.52 fb x "
    "138/fb); the physical sigma of what is generated, Z->ee/mumu, is 5.01 fb = sigma(ggF) 48.58 pb x "
    "BR(H->Zgamma) 1.533e-3 x BR(Z->ee, mumu) 0.0673. The paper's 7.52 fb includes Z->tautau, on a sample of "
    "Z->ee/mumu (its 20 % selection is that of Z->ee/mumu alone): its signal is 1.5x the physical one "
    "(docs/physics.md, \"Weights and splits\"). Background: the paper normalises its MadGraph "
    "pp->Z(ll)gamma sample to 55.5 pb for MadGraph's generator cuts, which Pythia cannot reproduce; what it "
    "fixes is the selected yield, 5 M of 45 M x 55.5 pb x 138/fb = 851 k. A background sample takes a "
    "k_factor on Pythia's LO cross-section of what is generated (right whatever generator cuts, veto, bias, "
    "enhancement or filter are used): the default generates the paper's photon from the quarks only "
    "(qqbar->gamma*/Z gamma; the paper's published example holds no photon off a lepton), k = 10.07 gives "
    "851 k selected; config/fsr.yaml adds Drell-Yan with a photon off a lepton, both parts with k = 8.25 "
    "(851 k together, Pythia's FSR/ISR ratio kept)."
)


def chunks(sample):
    """Chunk ids of a sample: generation chunks, or one per user-supplied file."""
    spec = SAMPLE_SPECS[sample]
    n = spec["generate"]["n_chunks"] if is_generated(sample) else len(spec["files"])
    return list(range(n))


def chunk_events(sample, chunk):
    """Events to generate in one chunk (the remainder goes to the first chunks)."""
    gen = SAMPLE_SPECS[sample]["generate"]
    base, rest = divmod(gen["n_events"], gen["n_chunks"])
    return base + (1 if int(chunk) < rest else 0)


def ntuple(sample, chunk):
    """The input n-tuple of a (sample, chunk): generated here or supplied in config."""
    if is_generated(sample):
        top = MASS_SCAN_MC if sample in MASS_POINT_SAMPLES else "results/mc"  # generate_mass_point
        return f"{top}/{sample}/{chunk}.root"
    return SAMPLE_SPECS[sample]["files"][int(chunk)]


def get_ntuple(wildcards):
    return ntuple(wildcards.sample, wildcards.chunk)


def get_sample_ntuples(wildcards):
    """Every input n-tuple of a sample, in chunk order (the friend trees' job)."""
    return [ntuple(wildcards.sample, chunk) for chunk in chunks(wildcards.sample)]


def branch_map(sample):
    """The branch map of a sample: its own `branch_map`, else the global one (generated: nanoaod)."""
    spec = SAMPLE_SPECS[sample]
    if is_generated(sample):
        return "nanoaod"
    return spec.get("branch_map", config["branch_map"])


def skim_dir(variation=NOMINAL):
    """Folder of the skims of one variation (nominal: results/skim)."""
    return "results/skim" if variation == NOMINAL else f"{SYST_DIR}/{variation}/skim"


def features_dir(variation=NOMINAL):
    """Folder of the features of one variation (nominal: results/features)."""
    return FEATURES_DIR if variation == NOMINAL else f"{SYST_DIR}/{variation}/features"


def skims(sample, variation=NOMINAL):
    return expand("{dir}/{sample}/{chunk}.root", dir=skim_dir(variation), sample=sample, chunk=chunks(sample))


def cutflows(sample, variation=NOMINAL):
    return expand(
        "{dir}/{sample}/{chunk}.cutflow.json", dir=skim_dir(variation), sample=sample, chunk=chunks(sample)
    )


def samples_of_kind(kind):
    return [s for s, v in config["samples"].items() if v["kind"] == kind]


# ---------------------------------------------------------------- input and param functions of the rules
def get_variation(wildcards):
    """The systematic variation of a job: its {variation} wildcard, or nominal."""
    return wildcards.get("variation", NOMINAL)


def get_variation_sizes(wildcards):
    """Sizes of the reprocessed variations, for a varied job only (editing them reruns no nominal job)."""
    return {} if get_variation(wildcards) == NOMINAL else config["fit"]["variations"]


def get_sample(wildcards):
    return wildcards.sample


def get_kind(wildcards):
    """signal or background."""
    return SAMPLE_SPECS[wildcards.sample]["kind"]


def get_normalisation(wildcards):
    return normalisation(wildcards.sample)


def get_branch_map(wildcards):
    return branch_map(wildcards.sample)


def get_skims(wildcards):
    """The skims of a sample, in the job's variation."""
    return skims(wildcards.sample, get_variation(wildcards))


def get_cutflows(wildcards):
    """The cutflows of a sample's skims, in the job's variation."""
    return cutflows(wildcards.sample, get_variation(wildcards))


def get_all_cutflows(wildcards):
    """The nominal cutflows of every sample."""
    return [c for s in config["samples"] for c in cutflows(s)]


def get_resolution_map_skims(wildcards):
    return skims(config["resolution_map"]["sample"])


def get_signal_features(wildcards):
    return expand("{dir}/{s}.parquet", dir=FEATURES_DIR, s=samples_of_kind("signal"))


def get_background_features(wildcards):
    return expand("{dir}/{s}.parquet", dir=FEATURES_DIR, s=samples_of_kind("background"))


def get_process(wildcards):
    return SAMPLE_SPECS[wildcards.sample]["generate"]["process"]


def get_chunk_events(wildcards):
    return chunk_events(wildcards.sample, wildcards.chunk)


def get_sample_seed(wildcards):
    return SAMPLE_SPECS[wildcards.sample]["generate"]["seed"]


def get_generate_runtime(wildcards):
    """Minutes a generation job may run (Slurm)."""
    return 30 + chunk_events(wildcards.sample, wildcards.chunk) // 20000


def run_files(wildcards, name):
    """One file `name` of every trial of the job's run (model, loss)."""
    return [f"{run_dir(f'{wildcards.model}_{wildcards.loss}', t)}/{name}" for t in trials()]


def get_run_scores(wildcards):
    return run_files(wildcards, "scores.parquet")


def get_run_checkpoints(wildcards):
    return run_files(wildcards, "checkpoint.pt")


def get_run_histories(wildcards):
    return run_files(wildcards, "history.csv")


def get_run_info(wildcards):
    """Model, loss name and the loss's config of an evaluation job."""
    return {"model": wildcards.model, "loss": wildcards.loss, **config["losses"][wildcards.loss]}


def get_plot_checkpoint(wildcards):
    """The checkpoint of the job's run in the trial of the evaluation plots (evaluation.roc_trial)."""
    return f"{run_dir(f'{wildcards.model}_{wildcards.loss}', PLOT_TRIAL)}/checkpoint.pt"


def get_friend_checkpoints(wildcards):
    """The checkpoints of every run, of the trial that scores the friend trees."""
    t = config["friends"]["trial"]
    return [f"{run_dir(run, t)}/checkpoint.pt" for run in RUNS]


#: shape systematics that reprocess the samples (photon energy scale); photon_resolution is a template morph
REPROCESSED = [n for n in config["fit"]["systematics"]["shape"] if n in config["fit"]["variations"]]


def get_fit_inputs(wildcards):
    """Named inputs of a fit: the checkpoint, the nominal features of every sample and, per reprocessed shape
    systematic and direction (photon_energy_scale_up, ...), that variation's features of the signal samples
    (only the signal's variations enter the fit: the background comes from a function fitted to the data, so
    the background samples are never reprocessed)."""
    samples = list(config["samples"])
    run = f"{wildcards.model}_{wildcards.loss}"
    inputs = {
        "checkpoint": f"{run_dir(run, config['fit']['trial'])}/checkpoint.pt",
        "nominal": expand("{dir}/{s}.parquet", dir=features_dir(), s=samples),
    }
    for name in REPROCESSED:
        for direction in DIRECTIONS:
            variation = f"{name}_{direction}"
            inputs[variation] = expand(
                "{dir}/{s}.parquet", dir=features_dir(variation), s=samples_of_kind("signal")
            )
    return inputs


def get_fit_plot_dir(wildcards):
    return fit_plot_dir(f"{wildcards.model}_{wildcards.loss}")


def trials():
    return list(range(config["split"]["n_trials"]))


def trained(name):
    """One output file of every (model, loss, trial) of the grid."""
    return [f"{run_dir(run, t)}/{name}" for run in RUNS for t in trials()]


def evaluation_outputs():
    """Metrics of every run and of the random classifier, Table I and the evaluation plots (evaluate.smk)."""
    return (
        [f"{eval_dir(run)}/metrics.json" for run in RUNS + [RANDOM]]
        + expand("{dir}/{stem}.{ext}", dir=TABLES_DIR, stem=["table1", "table1_paper"], ext=["md", "csv", "tex"])
        + expand("{dir}/{plot}.{ext}", dir=EVAL_PLOTS, plot=["roc", "roc_trials"], ext=["pdf", "png"])
        + [
            f"{eval_plot_dir(run)}/{plot}.{ext}"
            for run in RUNS
            for plot in ("scores", "sculpting", "training", "training_bands")
            for ext in ("pdf", "png")
        ]
        + [
            f"{eval_plot_dir(run)}/{plot}.{ext}"
            for run in ATTENTION_RUNS
            for plot in ("attention", "gradcam")
            for ext in ("pdf", "png")
        ]
    )


def all_outputs():
    return (
        trained("checkpoint.pt")
        + evaluation_outputs()
        + [f"results/friends/{s}" for s in config["samples"]]  # one friend tree per n-tuple inside
        + [f"{fit_dir(run)}/fit.json" for run in RUNS]
        + [f"{fit_plot_dir(run)}/scan.png" for run in RUNS]
        + expand("{dir}/fit.{ext}", dir=TABLES_DIR, ext=["md", "csv", "tex"])
        + expand("{dir}/{sample}.parquet", dir=FEATURES_DIR, sample=config["samples"])
        + expand("{dir}/cutflow.{ext}", dir=TABLES_DIR, ext=["md", "csv", "tex"])
        + expand("{dir}/{stem}.{ext}", dir=FEATURE_PLOTS, stem=PLOT_STEMS, ext=["pdf", "png"])
        + ["results/checks/physics.json"]
        + expand("{dir}/physics_checks.{ext}", dir=TABLES_DIR, ext=["md", "csv", "tex"])
        + mass_scan_outputs()
    )


MASS_SCAN_DIR = "results/mass_scan"
#: n-tuples of the samples with a Higgs mass set (rule generate_mass_point), apart from results/mc so that no
#: rule order is needed
MASS_SCAN_MC = "results/mc_mass_scan"
MASS_SCAN_PLOTS = "results/plots/mass_scan"


def mass_scan_outputs():
    """The per-mass-point evaluation of the mass scan's runs, its table and plot (none without mass_scan)."""
    if "mass_scan" not in config:
        return []
    return (
        [f"{MASS_SCAN_DIR}/{run}.json" for run in config["mass_scan"]["runs"]]
        + expand("{dir}/mass_scan.{ext}", dir=TABLES_DIR, ext=["md", "csv"])
        + [f"{TABLES_DIR}/mass_scan_sculpting.csv"]
        + expand("{dir}/performance.{ext}", dir=MASS_SCAN_PLOTS, ext=["pdf", "png"])
    )


def get_train_gpus(wildcards):
    """GPUs of a training job: none for the tree models, one for a neural network."""
    return 0 if wildcards.model in TREE_MODELS else 1


def get_train_runtime(wildcards):
    """Minutes a training job may run (Slurm)."""
    return 60 + config["training"]["epochs"] // 4


def get_run_spec(wildcards):
    """Everything a training job depends on, from config (so an edit reruns exactly these jobs)."""
    loss = config["losses"][wildcards.loss]
    # a neural model's own learning_rate (models.<model>) replaces training.learning_rate for its runs
    hparams, training = model_training(wildcards.model, config["models"].get(wildcards.model), config["training"])
    # not a param: an edit of how often a job saves its state (training.resume_every) reruns nothing
    training = result_training(training)
    return {
        "model": wildcards.model,
        "loss": wildcards.loss,
        "loss_kind": loss["kind"],
        "disco_lambda": float(loss["disco_lambda"]),
        "hparams": hparams,
        "training": training,
        "trial": int(wildcards.trial),
        "sigma_m": config["features"]["sigma_m"],  # the schema's default fills it in
        **run_scan_spec(config, wildcards.loss),  # a mass-scan strategy's (hzg.data.mass_scan); {} for standard
        # an object model's slots (config objects); absent for the others, whose params stay as they were
        **({"n_objects": n_objects(config["objects"])} if wildcards.model in OBJECT_MODELS else {}),
        # a multiclass loss' classes (hzg.learn.classes); {} for the binary losses, whose params stay as they were
        **multiclass_spec(config, wildcards.loss),
        # only where a loss sets them: the other runs' params stay as they were
        **loss_options(loss),
    }


def get_train_features(wildcards):
    """The feature files a training job reads: every sample of `samples`, the mass-scan points for a loss
    with a mass-scan strategy (munn, pnn) and `multiclass_samples` for a multiclass loss."""
    samples = list(config["samples"])
    if reads_scan_samples(config, wildcards.loss):
        samples += list(SCAN_SAMPLES)
    if reads_multiclass_samples(config, wildcards.loss):
        samples += list(CLASS_SAMPLES)
    return expand("{dir}/{sample}.parquet", dir=FEATURES_DIR, sample=samples)


def eval_params(*keys):
    """The `evaluation` config keys a rule uses (only these: editing another key does not rerun it)."""
    return {k: config["evaluation"][k] for k in keys}


METRIC_KEYS = (
    "n_score_bins",
    "mass_bins",
    "window",
    "overtraining_test",
    "overtraining_bins",
    "min_background_mc",
    "random_seed",
    "correlation_floor_permutations",
)
PLOT_TRIAL = config["evaluation"]["roc_trial"]


wildcard_constraints:
    sample="[A-Za-z0-9_]+",
    chunk="[0-9]+",
    model="|".join(MODELS),
    loss="|".join(config["losses"]),
    trial="[0-9]+",
    variation="|".join(VARIATIONS),
