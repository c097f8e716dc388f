# Training: one job per (model, loss, trial); neural models ask Slurm for a GPU.


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
    benchmark:
        "results/benchmarks/train/{model}_{loss}/trial{trial}.tsv",
    threads: config["training"]["threads"]
    resources:
        gpu=get_train_gpus,
        runtime=get_train_runtime,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"
