# H -> Z(ll) gamma with an event classifier transformer: the whole analysis as one DAG.
# Stages live in workflow/rules/*.smk; logic lives in the hzg library (src/hzg).
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# the library of this checkout, for the rules' helpers
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from hzg.config_checks import canonicalise_config, check_config, replace_whole  # noqa: E402


# The one full configuration; a --configfile (config/ci.yaml, config/paper.yaml, a user's) is an overlay that
# Snakemake merges over it key by key; its `samples` replace the default's as a whole (hzg.config_checks).
configfile: "config/config.yaml"


replace_whole(config, workflow.overwrite_configfiles)
validate(config, "workflow/schemas/config.schema.yaml")  # each key (and the defaults it fills in)
check_config(config)  # constraints between keys (hzg.config_checks): before any job runs
# keys sorted: params compare as text, so the file's key order must not rerun jobs
canonicalise_config(config)


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
include: "workflow/rules/mass_scan.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
        rules.benchmark_table.output,
