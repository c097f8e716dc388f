# Training: one job per (model, loss, trial); neural models ask Slurm for a GPU.

TREE_MODELS = ("xgboost", "bdt")


def run_spec(wildcards):
    """Everything a training job depends on, from config (so an edit reruns exactly these jobs)."""
    loss = config["losses"][wildcards.loss]
    return {
        "model": wildcards.model,
        "loss": wildcards.loss,
        "loss_kind": loss["kind"],
        "disco_lambda": float(loss["disco_lambda"]),
        "hparams": config["models"].get(wildcards.model, {}),
        "training": config["training"],
        "trial": int(wildcards.trial),
        "sigma_m": config["features"]["sigma_m"],  # the schema's default fills it in
    }


rule train:
    input:
        features=expand("results/features/{sample}.parquet", sample=config["samples"]),
    output:
        checkpoint="results/models/{model}_{loss}/trial{trial}/checkpoint.pt",
        history="results/models/{model}_{loss}/trial{trial}/history.csv",
        scores="results/models/{model}_{loss}/trial{trial}/scores.parquet",
    params:
        spec=run_spec,
    log:
        "logs/train/{model}_{loss}/trial{trial}.log",
    benchmark:
        "results/benchmarks/train/{model}_{loss}/trial{trial}.tsv",
    threads: config["training"]["threads"]
    resources:
        gpu=lambda wc: 0 if wc.model in TREE_MODELS else 1,
        runtime=lambda wc: 60 + config["training"]["epochs"] // 4,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"
