"""Every list the workflow names lives in hzg.registry: the schema's enums and the rules' wildcard
constraints agree with it."""

import re
from pathlib import Path

import pytest
import yaml

from hzg import registry

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def _prop(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node[key]
    return node


def test_schema_model_enum_is_the_registry():
    assert _prop("properties", "runs", "items", "properties", "model", "enum") == list(registry.MODELS)


def test_schema_requires_every_tree_hyper_parameter_the_fits_take():
    from hzg.learn.boosted import HPARAM_KEYS, OPTIONAL_HPARAM_KEYS

    for name, keys in HPARAM_KEYS.items():
        section = _prop("properties", "models", "properties", name)
        assert section["required"] == list(keys)
        assert set(section["properties"]) == set(keys) | set(OPTIONAL_HPARAM_KEYS)


def test_schema_loss_kind_enum_is_the_registry():
    kind = _prop("properties", "losses", "additionalProperties", "properties", "kind", "enum")
    assert kind == list(registry.LOSS_KINDS)


def test_schema_shape_systematics_and_variations_are_the_registry():
    fit = _prop("properties", "fit", "properties")
    assert fit["systematics"]["properties"]["shape"]["items"]["enum"] == list(registry.SHAPE_SYSTEMATICS)
    reprocessed = set(fit["variations"]["properties"])
    assert {f"{name}_{d}" for name in reprocessed for d in registry.DIRECTIONS} == set(registry.VARIATIONS)
    assert reprocessed <= set(registry.SHAPE_SYSTEMATICS)


def test_wildcard_constraints_come_from_the_registry():
    """The rules spell no model or variation list: the constraints are joined from the registry."""
    common = (REPO / "workflow/rules/common.smk").read_text()
    block = common[common.index("wildcard_constraints:") :]
    assert re.search(r'model="\|"\.join\(MODELS\)', block)
    assert re.search(r'variation="\|"\.join\(VARIATIONS\)', block)
    rules = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    for name in (*registry.MODELS, *registry.VARIATIONS):
        assert f'"{name}"' not in rules, f"{name} spelled in a rule file: take it from hzg.registry"


def test_model_lists_agree():
    from hzg.learn.models import MODEL_CLASSES

    assert set(MODEL_CLASSES) == set(registry.NEURAL_MODELS)
    assert set(registry.MODELS) | {registry.RANDOM} == set(registry.MODEL_LABELS)
    assert not set(registry.NEURAL_MODELS) & set(registry.TREE_MODELS)


@pytest.mark.parametrize("trial", [0, 2, 11])
def test_split_column_and_codes(trial):
    assert registry.split_column(trial) == f"split_{trial}"
    assert registry.SPLIT_NAMES[registry.TRAIN] == "train"
    assert registry.SPLIT_NAMES[registry.VALIDATION] == "validation"
    assert registry.SPLIT_NAMES[registry.TEST] == "test"


def test_run_names_and_labels():
    assert registry.run_name("etn", "bce_disco") == "etn_bce_disco"
    assert registry.run_names([{"model": "bdt", "loss": "bce"}]) == ["bdt_bce"]
    assert registry.run_title("etn", {"kind": "bce", "disco_lambda": 10}) == "ETN, BCE+DisCo"
    assert registry.run_title("xgboost", {"kind": "bce", "disco_lambda": 0}) == "XGBoost"
    assert registry.epoch_label("bdt") == "Number of trees" and registry.epoch_label("etn") == "Epoch"


def test_schema_validates_the_object_models_hyper_parameters():
    import jsonschema

    from hzg.learn.models import default_hparams

    defs = SCHEMA["$defs"]
    # every constructor argument, and Adam's learning rate (registry.model_training moves it to training)
    assert set(defs["object_etn"]["properties"]) == set(default_hparams("etn_objects")) | {
        registry.LEARNING_RATE
    }
    assert set(default_hparams("etn_objects_concat")) == set(default_hparams("etn_objects")) - {"merge"}
    models = {"$defs": defs, **SCHEMA["properties"]["models"]}
    jsonschema.validate({"etn_objects": {"merge": "concat", "d_model": 8}}, models)
    for bad in (
        {"etn_objects": {"merge": "sum"}},
        {"etn_objects": {"layers": 2}},
        {"etn_objects_concat": {"merge": "cross"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, models)


@pytest.mark.parametrize(
    "share, valid", [(0.5, True), (None, True), (0.0, False), (1.0, False), ("half", False)]
)
def test_a_loss_narrow_share_is_a_fraction_or_null(share, valid):
    """losses.<loss>.narrow_share (the DisCo background's share drawn in the narrow window) lies in (0, 1)."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["losses"]["bce_disco"]["narrow_share"] = share
    if valid:
        validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    else:
        with pytest.raises(Exception, match="narrow_share|losses"):
            validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
