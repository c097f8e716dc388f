"""The config before any job runs: how overlays merge over the full default, constraints between keys that the
JSON schema cannot express (every message names the keys involved; all problems are reported at once), and its
canonical key order."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hzg.registry import TREE_MODELS, run_name


#: the one full configuration; config/ci.yaml, config/paper.yaml and a user's --configfile are overlays on it
DEFAULT_CONFIG = "config/config.yaml"
#: top-level keys an overlay replaces as a whole (a sample must not inherit keys of another file's sample)
REPLACED_WHOLE = ("samples",)


def merge_overlay(config: dict[str, Any], overlay: Mapping[str, Any], top: bool = True) -> dict[str, Any]:
    """`config` updated in place by `overlay` as Snakemake merges --configfile over `configfile:` (mappings
    key by
    key, everything else replaced), except that the keys of REPLACED_WHOLE are replaced as a whole."""
    for key, value in overlay.items():
        if (
            isinstance(value, Mapping)
            and isinstance(config.get(key), dict)
            and not (top and key in REPLACED_WHOLE)
        ):
            merge_overlay(config[key], value, top=False)
        else:
            config[key] = copy.deepcopy(value)
    return config


def replace_whole(config: dict[str, Any], overlay_paths: Iterable[str | Path]) -> None:
    """After Snakemake's own merge of the --configfile overlays: their REPLACED_WHOLE keys replace, in
    order."""
    for path in overlay_paths:
        overlay = yaml.safe_load(Path(path).read_text()) or {}
        for key in REPLACED_WHOLE:
            if key in overlay:
                config[key] = copy.deepcopy(overlay[key])


def load_config(path: str | Path, default: str | Path | None = None) -> dict[str, Any]:
    """The configuration a run with `--configfile path` sees (before the schema's defaults): the full default
    (`config/config.yaml` beside `path`) with the overlay merged over it; `path` may be the default itself."""
    path = Path(path)
    default = Path(default) if default is not None else path.parent / Path(DEFAULT_CONFIG).name
    config = yaml.safe_load(default.read_text())
    if path.resolve() != default.resolve():
        merge_overlay(config, yaml.safe_load(path.read_text()) or {})
    return config


class ConfigError(ValueError):
    """The config breaks a constraint between keys; the message lists every problem with its keys."""


def _window_ok(window: Any) -> bool:
    return isinstance(window, (list, tuple)) and len(window) == 2 and window[0] < window[1]


def _fsr_slice_problems(samples: Mapping[str, Any], generation: Mapping[str, Any]) -> list[str]:
    """The Drell-Yan FSR slicing (`generation.fsr_slice_pt`) needs both halves: without the slice the events
    above it would be missing, without the 2 -> 1 sample those below it."""
    processes: dict[str, list[str]] = {}
    for name, spec in samples.items():
        if spec.get("generate"):
            processes.setdefault(spec["generate"]["process"], []).append(name)
    slice_pt = generation.get("fsr_slice_pt")
    below, above = processes.get("drellyan_fsr", []), processes.get("drellyan_jet_fsr", [])
    if above and slice_pt is None:
        return [
            f"samples {above} generate drellyan_jet_fsr, the Drell-Yan FSR slice above "
            "generation.fsr_slice_pt, but generation.fsr_slice_pt is null"
        ]
    if slice_pt is None:
        return []
    out = []
    if below and not above:
        out.append(
            f"generation.fsr_slice_pt is {slice_pt}: samples {below} (drellyan_fsr) drop their events above "
            "it, "
            "but no sample generates the slice (process drellyan_jet_fsr)"
        )
    if above and not below:
        out.append(
            f"generation.fsr_slice_pt is {slice_pt} and samples {above} generate the slice above it, but no "
            "sample generates drellyan_fsr, the Drell-Yan FSR below it"
        )
    return out


def _mhat_strata_problems(generation: Mapping[str, Any]) -> list[str]:
    """`generation.mhat_strata` as `hzg.data.generate.mhat_strata` checks it: edges tiling [mhat_min,
    mhat_max], one positive fraction per stratum, summing to 1."""
    from hzg.data.generate import mhat_strata

    try:
        mhat_strata(generation)
    except ValueError as err:
        return [str(err)]
    return []


def _narrow_share_problems(
    i: int, run: Mapping[str, Any], losses: Mapping[str, Any], training: Mapping[str, Any]
) -> list[str]:
    """A run whose loss sets `narrow_share` needs what the sampler splits
    (`hzg.learn.draws.narrow_share_missing`, which the training job would otherwise stop on)."""
    from hzg.learn.draws import narrow_share_missing

    loss = losses.get(run["loss"], {})
    if loss.get("narrow_share") is None or run["model"] in TREE_MODELS:
        return []
    missing = narrow_share_missing(run["loss"], loss["disco_lambda"], training)
    if not missing:
        return []
    return [
        f"runs[{i}] ({run_name(run['model'], run['loss'])}): losses.{run['loss']}.narrow_share is "
        f"{loss['narrow_share']} but it needs {', '.join(missing)}; set it to null there"
    ]


def problems(config: Mapping[str, Any]) -> list[str]:
    """Every broken cross-key constraint of a (schema-valid) config, as one sentence each."""
    out: list[str] = []
    split = config["split"]
    n_trials, seeds = int(split["n_trials"]), list(split["seeds"])
    if n_trials > len(seeds):
        out.append(
            f"split.n_trials is {n_trials} but split.seeds has only {len(seeds)} seeds (one per trial)"
        )
    if len(set(seeds[:n_trials])) < min(n_trials, len(seeds)):
        out.append(f"split.seeds {seeds[:n_trials]} repeat a seed: two trials would have the same split")
    for key, value in (
        ("fit.trial", config.get("fit", {}).get("trial")),
        ("friends.trial", config.get("friends", {}).get("trial")),
        ("evaluation.roc_trial", config.get("evaluation", {}).get("roc_trial")),
    ):
        if value is not None and not 0 <= int(value) < n_trials:
            out.append(f"{key} is {value} but split.n_trials is {n_trials} (trials 0 to {n_trials - 1})")
    samples = config["samples"]
    kinds = {spec["kind"] for spec in samples.values()}
    if kinds != {"signal", "background"}:
        out.append(f"samples needs at least one signal and one background sample, has only {sorted(kinds)}")
    res_sample = config["resolution_map"]["sample"]
    if res_sample not in samples:
        out.append(f"resolution_map.sample {res_sample!r} is not one of samples ({', '.join(samples)})")
    losses = config["losses"]
    seen = set()
    for i, run in enumerate(config["runs"]):
        name = run_name(run["model"], run["loss"])
        if name in seen:
            out.append(f"runs[{i}] repeats {name}")
        seen.add(name)
        if run["loss"] not in losses:
            out.append(f"runs[{i}].loss {run['loss']!r} is not one of losses ({', '.join(losses)})")
        elif run["model"] in TREE_MODELS and (
            losses[run["loss"]]["kind"] != "bce" or float(losses[run["loss"]]["disco_lambda"]) > 0
        ):
            out.append(
                f"runs[{i}]: model {run['model']!r} supports only a BCE loss without DisCo, not "
                f"{run['loss']!r}"
            )
        if run["model"] in TREE_MODELS and not config.get("models", {}).get(run["model"]):
            out.append(
                f"runs[{i}]: model {run['model']!r} takes its hyper-parameters from models.{run['model']}"
            )
        out += _narrow_share_problems(i, run, losses, config["training"])
    training = config["training"]
    for key in ("narrow_window", "wide_window"):
        if not _window_ok(training[key]):
            out.append(f"training.{key} {training[key]} is not an interval [low, high] with low < high")
    if _window_ok(training["narrow_window"]) and _window_ok(training["wide_window"]):
        (nl, nh), (wl, wh) = training["narrow_window"], training["wide_window"]
        if not (wl <= nl and nh <= wh):
            out.append(
                f"training.narrow_window {training['narrow_window']} is not inside training.wide_window "
                f"{training['wide_window']}"
            )
    epp = training.get("events_per_epoch")
    if epp is not None and int(epp) < 2:
        out.append(f"training.events_per_epoch is {epp}: at least 2 (one event of each class) or null")
    generation = config.get("generation", {})
    if generation.get("qcd_final_state_shower") is False and generation.get("level") != "parton":
        level = generation.get("level")
        out.append(
            f"generation.qcd_final_state_shower is false but generation.level is {level!r}: only parton "
            "level (nothing hadronises) may skip the QCD final-state shower"
        )
    out += _fsr_slice_problems(samples, generation)
    out += _mhat_strata_problems(generation)
    sel = config["selection"]
    if not sel["mllg_min"] < sel["mllg_max"]:
        out.append(f"selection.mllg_min {sel['mllg_min']} is not below selection.mllg_max {sel['mllg_max']}")
    fit = config.get("fit", {})
    shapes = fit.get("systematics", {}).get("shape", [])
    variations = fit.get("variations", {})
    for name in shapes:
        if name == "photon_resolution":  # a template morph of the signal, sized by fit.photon_resolution
            if not fit.get("photon_resolution"):
                out.append(
                    "fit.systematics.shape lists 'photon_resolution' but fit.photon_resolution is null or 0"
                )
        elif name not in variations:
            out.append(f"fit.systematics.shape lists {name!r} but fit.variations has no size for it")
    from hzg.data import mass_scan  # the mass scan's own constraints (seed paper 004)

    out += mass_scan.problems(config)
    from hzg.learn import classes  # the multiclass losses' classes (seed thesis 002)

    out += classes.problems(config)
    return out


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every broken cross-key constraint (`problems`)."""
    found = problems(config)
    if found:
        raise ConfigError("config error" + ("s" if len(found) > 1 else "") + ":\n  - " + "\n  - ".join(found))


#: Top-level mappings whose order means something: the samples' order is that of the training inputs and
#: table columns.
ORDERED_KEYS = ("samples",)


def canonical(value: Any, keep_order: bool = False) -> Any:
    """`value` with the keys of every mapping sorted (lists keep their order), so that the text of a rule's
    params
    (Snakemake compares params by their repr) does not depend on the order keys were written in the config
    file.
    `keep_order`: this mapping's own keys stay in their order (its values are still made canonical)."""
    if isinstance(value, Mapping):
        keys = list(value) if keep_order else sorted(value, key=str)
        return {key: canonical(value[key]) for key in keys}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def canonicalise_config(config: dict[str, Any]) -> None:
    """Put `config` (Snakemake's, changed in place) in canonical order: every mapping's keys sorted, except
    the order
    of the mappings named in ORDERED_KEYS."""
    ordered = {key: canonical(config[key], keep_order=key in ORDERED_KEYS) for key in sorted(config)}
    config.clear()
    config.update(ordered)
