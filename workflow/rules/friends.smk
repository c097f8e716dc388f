# Friend trees: the score of every trained (model, loss) beside each input n-tuple, entry for entry.
# One job per sample writes the friend tree of each of its n-tuples (results/friends/{sample}/{chunk}.root):
# a chunk costs about a second of scoring, its own job would add the start-up and the models' loading.


rule friends:
    input:
        ntuples=get_sample_ntuples,
        resolution_map=RESOLUTION_MAP,
        checkpoints=get_friend_checkpoints,
    output:
        directory("results/friends/{sample}"),
    params:
        chunks=lambda wildcards: chunks(wildcards.sample),
        branch_map=get_branch_map,
        cuts=config["selection"],
        tree=config["friends"]["tree"],
        objects=OBJECTS,  # only where a run reads objects (common.smk)
    log:
        "logs/friends/{sample}.log",
    benchmark:
        benchmark_file("friends", "{sample}"),
    threads: 1
    resources:
        mem_mb=8000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/friends.py"
