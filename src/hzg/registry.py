"""Every list the workflow names, in one place: models and their labels, loss kinds, runs, systematic
variations and the split codes.

The rules (`workflow/rules/common.smk`: wildcard constraints), the config schema (its enums; a test checks
they
agree) and the library read these; nothing else spells them out. Pure Python, no third-party imports, so every
stage's environment can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# ---------------------------------------------------------------- models
#: model name -> label in Table I and plot titles, in the paper's order (Random first, trees, networks)
MODEL_LABELS: dict[str, str] = {
    "random": "Random",
    "bdt": "BDT",
    "xgboost": "XGBoost",
    "fnn": "FNN",
    "dfnn": "DFNN",
    "etn": "ETN",
    "ft_transformer": "FT-Transformer",
    "resnet": "ResNet",
    "etn_objects": "ETN+objects",
    "etn_objects_concat": "ETN+objects (concat.)",
    "etn_jets": "ETN+jets (missing: embedding)",
    "etn_jets_sentinel": "ETN+jets (missing: sentinel)",
    "ft_transformer_jets": "FT-Transformer+jets (missing: embedding)",
    "ft_transformer_jets_sentinel": "FT-Transformer+jets (missing: sentinel)",
}
#: the tree models (trained with hzg.learn.boosted)
TREE_MODELS: tuple[str, ...] = ("xgboost", "bdt")
#: the neural networks (hzg.learn.models)
NEURAL_MODELS: tuple[str, ...] = (
    "etn",
    "fnn",
    "dfnn",
    "ft_transformer",
    "resnet",
    "etn_objects",
    "etn_objects_concat",
    "etn_jets",
    "etn_jets_sentinel",
    "ft_transformer_jets",
    "ft_transformer_jets_sentinel",
)
#: how a missing value (NaN) enters a network (issue 14, seed paper 002): "embedding", a learned token in
#: place of the feature's token; "sentinel", the number `hzg.learn.classifier.SENTINEL` in place of the value
MISSING_MODES: tuple[str, ...] = ("embedding", "sentinel")
#: the networks that read the jet features besides the paper's (hzg.data.features.JET_FEATURES, NaN where an
#: event lacks the jets): name -> (architecture, missing mode); each a variant of the ETN or FT-Transformer
JET_MODELS: dict[str, tuple[str, str]] = {
    "etn_jets": ("etn", "embedding"),
    "etn_jets_sentinel": ("etn", "sentinel"),
    "ft_transformer_jets": ("ft_transformer", "embedding"),
    "ft_transformer_jets_sentinel": ("ft_transformer", "sentinel"),
}


def missing_mode(model: str) -> str | None:
    """How missing values enter model `model` (`MISSING_MODES`); None for a model without optional inputs."""
    return JET_MODELS[model][1] if model in JET_MODELS else None


#: the networks that read the reconstructed objects besides the event features (hzg.data.objects): their
#: inputs end with the object block
OBJECT_MODELS: tuple[str, ...] = ("etn_objects", "etn_objects_concat")
#: the networks with attention: their attention maps and Grad-CAM attribution are plotted (rule interpret)
ATTENTION_MODELS: tuple[str, ...] = ("etn", "ft_transformer", *OBJECT_MODELS, *JET_MODELS)
#: every model a run of the config may name (the schema's enum of runs[].model)
MODELS: tuple[str, ...] = NEURAL_MODELS + TREE_MODELS
#: the random classifier: evaluated like a run, never trained
RANDOM = "random"
#: x-axis label of the training curves: what one step of training is for each model
EPOCH_LABELS: dict[str, str] = {"xgboost": "Boosting round", "bdt": "Number of trees"}
DEFAULT_EPOCH_LABEL = "Epoch"

# ---------------------------------------------------------------- losses
#: loss kind -> label in Table I (the schema's enum of losses.*.kind); multiclass: seed thesis 002's C-class
#: cross-entropy (hzg.learn.classes, hzg.learn.multiclass), " (two-phase)" when it ends binary
LOSS_LABELS: dict[str, str] = {"bce": "BCE", "extreme": "Ext", "multiclass": "Multiclass"}
LOSS_KINDS: tuple[str, ...] = tuple(LOSS_LABELS)
#: training strategy of a loss entry (config losses.*.strategy; hzg.learn.strategies) -> suffix of its label:
#: standard (the paper's, at 125 GeV), munn (mass-unspecific, seed paper 004) and pnn (parametrised)
STANDARD = "standard"
STRATEGY_LABELS: dict[str, str] = {STANDARD: "", "munn": " (muNN)", "pnn": " (pNN)"}
STRATEGIES: tuple[str, ...] = tuple(STRATEGY_LABELS)

# ---------------------------------------------------------------- systematic variations
#: variations reprocessed from the n-tuples on: name -> (object collection, sign of the relative pT shift);
#: the nominal is the variation that changes nothing
NOMINAL = "nominal"
VARIATIONS: dict[str, tuple[str, int]] = {
    "photon_energy_scale_up": ("photon", +1),
    "photon_energy_scale_down": ("photon", -1),
}
#: directions of a two-sided shape systematic (a variation is "<systematic>_<direction>")
DIRECTIONS: tuple[str, ...] = ("up", "down")
#: shape systematics of the fit (the schema's enum of fit.systematics.shape); the reprocessed ones have
#: variations
SHAPE_SYSTEMATICS: tuple[str, ...] = ("photon_energy_scale", "photon_resolution")

# ---------------------------------------------------------------- split codes
TRAIN, VALIDATION, TEST = 0, 1, 2
#: split code -> name
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


#: training settings that leave a run's result as it is (how often a job saves its state): not part of the
#: training job's params (an edit reruns nothing), its description, hash or resume key
RESULT_FREE_TRAINING_KEYS = ("resume_every",)


def result_training(training: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings a run's result depends on: `training` without `RESULT_FREE_TRAINING_KEYS`."""
    return {k: v for k, v in training.items() if k not in RESULT_FREE_TRAINING_KEYS}


#: optional key of a neural model's section `models.<model>`: its own Adam learning rate, instead of
#: training.learning_rate (tree models' `learning_rate` is their shrinkage, a hyper-parameter of the fit)
LEARNING_RATE = "learning_rate"


def model_training(
    model: str, hparams: Mapping[str, Any] | None, training: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hyper-parameters, training settings) of one run of `model`: a neural model's optional
    `learning_rate` moves from its hyper-parameters (which build the model) to the training settings (which
    drive Adam); a model without one, and every tree model, keeps both as they are."""
    hparams, training = dict(hparams or {}), dict(training)
    if model not in TREE_MODELS and LEARNING_RATE in hparams:
        training[LEARNING_RATE] = float(hparams.pop(LEARNING_RATE))
    return hparams, training


def loss_options(loss: Mapping[str, Any]) -> dict[str, Any]:
    """The run-spec fields a loss section sets, only where it sets them (`balance_classifier`,
    `narrow_share`): the params and hashes of the runs whose loss leaves them out stay as they were."""
    return {
        **({"balance_classifier": True} if loss.get("balance_classifier") else {}),
        **({"narrow_share": float(loss["narrow_share"])} if loss.get("narrow_share") is not None else {}),
    }


def split_column(trial: int) -> str:
    """Column of the feature table holding the split code of every event in trial `trial`."""
    return f"split_{int(trial)}"


# ---------------------------------------------------------------- runs
def run_name(model: str, loss: str) -> str:
    """Name of a (model, loss) run: its output folders are results/*/<run name>/."""
    return f"{model}_{loss}"


def run_names(runs: list[Mapping[str, Any]]) -> list[str]:
    """Run names of the config's `runs` list, in config order."""
    return [run_name(r["model"], r["loss"]) for r in runs]


def epoch_label(model: str) -> str:
    """What the x axis of a model's training curves counts."""
    return EPOCH_LABELS.get(model, DEFAULT_EPOCH_LABEL)


def loss_label(model: str, loss: Mapping[str, Any] | None) -> str:
    """The paper's loss column: N.A. for trees and the random classifier, BCE / Ext, '+DisCo' with lambda >
    0."""
    if loss is None or model in (RANDOM, *TREE_MODELS):
        return "N.A."
    label = LOSS_LABELS.get(loss["kind"], str(loss["kind"]))
    label += "+DisCo" if float(loss["disco_lambda"]) > 0 else ""
    label += " (two-phase)" if float(loss.get("multiclass_fraction", 1.0)) < 1 else ""
    return label + STRATEGY_LABELS.get(loss.get("strategy", STANDARD), "")


def run_title(model: str, loss: Mapping[str, Any] | None) -> str:
    """'ETN, BCE+DisCo' as in Table I (the technique alone where the loss is N.A.)."""
    label = loss_label(model, loss)
    return MODEL_LABELS.get(model, model) + ("" if label == "N.A." else f", {label}")
