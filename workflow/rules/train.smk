# Training: one job per (model, loss, trial); neural models ask Slurm for a GPU.


def get_train_gpus(wildcards):
    """GPUs of a training job: none for the tree models, one for a neural network."""
    return 0 if wildcards.model in TREE_MODELS else 1


def get_train_runtime(wildcards):
    """Minutes a training job may run (Slurm)."""
    return 60 + config["training"]["epochs"] // 4


def get_run_spec(wildcards):
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
        spec=get_run_spec,
    log:
        "logs/train/{model}_{loss}/trial{trial}.log",
    threads: config["training"]["threads"]
    resources:
        gpu=get_train_gpus,
        runtime=get_train_runtime,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"
