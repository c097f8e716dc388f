# Friend trees: the score of every trained (model, loss) beside each input n-tuple, entry for entry.


def friend_checkpoints(wildcards):
    t = config["friends"]["trial"]
    return [f"results/models/{run}/trial{t}/checkpoint.pt" for run in RUNS]


rule friends:
    input:
        ntuple=ntuple_path,
        resolution_map="results/features/resolution_map.json",
        checkpoints=friend_checkpoints,
    output:
        "results/friends/{sample}/{chunk}.root",
    params:
        branch_map=lambda wc: branch_map(wc.sample),
        cuts=config["selection"],
        tree=config["friends"]["tree"],
    log:
        "logs/friends/{sample}/{chunk}.log",
    benchmark:
        "results/benchmarks/friends/{sample}/{chunk}.tsv",
    threads: 1
    resources:
        mem_mb=8000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/friends.py"
