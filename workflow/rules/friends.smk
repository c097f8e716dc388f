# Friend trees: the score of every trained (model, loss) beside each input n-tuple, entry for entry.


rule friends:
    input:
        ntuple=get_ntuple,
        resolution_map=RESOLUTION_MAP,
        checkpoints=get_friend_checkpoints,
    output:
        "results/friends/{sample}/{chunk}.root",
    params:
        branch_map=get_branch_map,
        cuts=config["selection"],
        tree=config["friends"]["tree"],
        objects=OBJECTS,  # only where a run reads objects (common.smk)
    log:
        "logs/friends/{sample}/{chunk}.log",
    benchmark:
        benchmark_file("friends", "{sample}/{chunk}"),
    threads: 1
    resources:
        mem_mb=8000,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/friends.py"
