# Binned profile-likelihood fits (pyhf): mu, its uncertainty and the expected significance per (model, loss).


def fit_features(direction=None):
    """Feature files of all samples: nominal, or one direction of every shape systematic."""
    samples = list(config["samples"])
    if direction is None:
        return expand("results/features/{s}.parquet", s=samples)
    return expand("results/syst/{name}_{d}/features/{s}.parquet", name=config["fit"]["systematics"]["shape"],
                  d=direction, s=samples)


rule fit:
    input:
        checkpoint=f"results/models/{{model}}_{{loss}}/trial{config['fit']['trial']}/checkpoint.pt",
        nominal=fit_features(),
        up=fit_features("up"),
        down=fit_features("down"),
    output:
        workspace="results/fit/{model}_{loss}/workspace.json",
        fit="results/fit/{model}_{loss}/fit.json",
        templates="results/fit/{model}_{loss}/templates.json",
    params:
        fit=config["fit"],
    log:
        "logs/fit/{model}_{loss}.log",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"
