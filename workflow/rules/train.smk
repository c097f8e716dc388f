# Training: one job per (model, loss, trial); neural models ask Slurm for a GPU.


rule train:
    input:
        features=get_train_features,
    output:
        checkpoint=f"{run_dir()}/checkpoint.pt",
        history=f"{run_dir()}/history.csv",
        scores=f"{run_dir()}/scores.parquet",
    params:
        spec=get_run_spec,
    log:
        "logs/train/{model}_{loss}/trial{trial}.log",
    benchmark:
        benchmark_file("train", "{model}_{loss}/trial{trial}"),
    threads: config["training"]["threads"]
    resources:
        gpu=get_train_gpus,
        runtime=get_train_runtime,
        mem_mb=16000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"
