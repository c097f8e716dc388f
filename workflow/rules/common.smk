# Helpers shared by the rules: samples, chunks and paths. Pure functions of the config.
from hzg.config_checks import canonicalise_config, check_config  # noqa: E402
from hzg.data.features import DISCO_FEATURES, feature_set  # noqa: E402
from hzg.registry import MODELS, RANDOM, TREE_MODELS, VARIATIONS, epoch_label, run_names  # noqa: E402

check_config(config)  # constraints between keys (the schema checks each key): before any job runs
canonicalise_config(config)  # keys sorted: params compare as text, so the file's key order must not rerun jobs

#: the 12 classifier inputs, sigma_m in GeV or as sigma_m/m (config features.sigma_m)
INPUT_FEATURES = list(feature_set(config["features"]["sigma_m"]))
PLOT_VARIABLES = INPUT_FEATURES + list(DISCO_FEATURES) + ["mllg"]
#: "<model>_<loss>" of every run of the grid, in config order
RUNS = run_names(config["runs"])


def get_epoch_label(wildcards):
    """x-axis label of a run's training curves (epochs, boosting rounds or trees)."""
    return epoch_label(wildcards.model)


def is_generated(sample):
    return "generate" in config["samples"][sample]


def normalisation(sample):
    """How a sample's weights are normalised: {"xsec_pb": σ} or {"k_factor": k} (× the generator's σ)."""
    spec = config["samples"][sample]
    return {key: spec[key] for key in ("xsec_pb", "k_factor") if key in spec}


NORMALISATION_NOTE = (
    "Signal: 5.01 fb = sigma(ggF) 48.58 pb x BR(H->Zgamma) 1.533e-3 x BR(Z->ee, mumu) 0.0673 (the paper's 7.52 fb "
    "includes Z->tautau, not generated here). Background: the paper normalises its one MadGraph pp->Z(ll)gamma sample, "
    "photons from the quarks (ISR) and from the leptons (FSR), to 55.5 pb for MadGraph's generator cuts, which Pythia "
    "cannot reproduce; what it fixes is the selected yield, 5 M of 45 M x 55.5 pb x 138/fb = 851 k. Both parts here "
    "(qqbar->gamma*/Z gamma, and Drell-Yan with a photon off a lepton) take one common k_factor on Pythia's LO "
    "cross-section of what is generated: 7.05 gives 851 k selected (ISR 695 fb, FSR 179 fb at LO after the selection) "
    "and keeps Pythia's FSR/ISR ratio, whatever generator cuts, veto, bias, enhancement or filter are used."
)


def chunks(sample):
    """Chunk ids of a sample: generation chunks, or one per user-supplied file."""
    spec = config["samples"][sample]
    n = spec["generate"]["n_chunks"] if is_generated(sample) else len(spec["files"])
    return list(range(n))


def chunk_events(sample, chunk):
    """Events to generate in one chunk (the remainder goes to the first chunks)."""
    gen = config["samples"][sample]["generate"]
    base, rest = divmod(gen["n_events"], gen["n_chunks"])
    return base + (1 if int(chunk) < rest else 0)


def ntuple_path(wildcards):
    """The input n-tuple of a (sample, chunk): generated here or supplied in config."""
    if is_generated(wildcards.sample):
        return f"results/mc/{wildcards.sample}/{wildcards.chunk}.root"
    return config["samples"][wildcards.sample]["files"][int(wildcards.chunk)]


def branch_map(sample):
    """The branch map of a sample: its own `branch_map`, else the global one (generated: nanoaod)."""
    spec = config["samples"][sample]
    if is_generated(sample):
        return "nanoaod"
    return spec.get("branch_map", config["branch_map"])


def skims(sample):
    return expand("results/skim/{sample}/{chunk}.root", sample=sample, chunk=chunks(sample))


def cutflows(sample):
    return expand("results/skim/{sample}/{chunk}.cutflow.json", sample=sample, chunk=chunks(sample))


def trials():
    return list(range(config["split"]["n_trials"]))


def trained(name):
    """One output file of every (model, loss, trial) of the grid."""
    return [f"results/models/{run}/trial{t}/{name}" for run in RUNS for t in trials()]


def evaluation_outputs():
    """Metrics of every run and of the random classifier, Table I and the evaluation plots (evaluate.smk)."""
    return (
        expand("results/eval/{run}/metrics.json", run=RUNS + [RANDOM])
        + expand("results/tables/table1.{ext}", ext=["md", "csv", "tex"])
        + expand("results/plots/eval/roc.{ext}", ext=["pdf", "png"])
        + expand("results/plots/eval/{run}/{plot}.{ext}", run=RUNS, plot=["scores", "sculpting", "training"],
                 ext=["pdf", "png"])
    )


def all_outputs():
    return (
        trained("checkpoint.pt")
        + evaluation_outputs()
        + [f"results/friends/{s}/{c}.root" for s in config["samples"] for c in chunks(s)]
        + expand("results/fit/{run}/fit.json", run=RUNS)
        + expand("results/plots/fit/{run}/scan.png", run=RUNS)
        + expand("results/tables/fit.{ext}", ext=["md", "csv", "tex"])
        + expand("results/features/{sample}.parquet", sample=config["samples"])
        + expand("results/tables/cutflow.{ext}", ext=["md", "csv", "tex"])
        + expand("results/plots/features/{var}.{ext}", var=PLOT_VARIABLES, ext=["pdf", "png"])
        + ["results/checks/physics.json"]
    )


wildcard_constraints:
    sample="[A-Za-z0-9_]+",
    chunk="[0-9]+",
    model="|".join(MODELS),
    loss="|".join(config["losses"]),
    trial="[0-9]+",
    variation="|".join(VARIATIONS),
