# H -> Z(ll) gamma with an event classifier transformer: the whole analysis as one DAG.
# Stages live in workflow/rules/*.smk; logic lives in the hzg library (src/hzg).
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, unless the user gives --configfile (a given file replaces it, it is not merged:
# a sample defined there must not inherit keys of the default's samples).
if not config:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/skim.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/friends.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/benchmarks.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
        rules.benchmark_table.output,
