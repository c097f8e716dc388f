"""The signal samples of a Higgs-mass scan (config `mass_scan`, seed paper 004) and what a mass-scan run needs
to know of them. Pure functions of the config; the rules (workflow/rules/common.smk, mass_scan.smk) call them.

Every mass point other than the nominal one is a sample `signal_m<mass>` (`point_sample`): a copy of the
nominal signal sample with `generate.higgs_mass` set, its own events, chunks and seed, and the cross-section
`mass_scan.signal.xsec_pb` (by default the nominal sample's: the same sigma x BR at every mass, so that the
mass points differ in shape only and a significance per mass point compares the classifiers at one signal
yield; the SM sigma(ggF) x BR(H -> Z gamma) varies by a factor of about 4 over 110-160 GeV).
These samples are not in `samples`: the analysis (standard runs, friend trees, fits, Table I) never sees them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hzg.data.generate import SM_HIGGS_MASS
from hzg.learn.strategies import bin_edges
from hzg.registry import STANDARD, run_name, run_names


def point_sample(mass: float) -> str:
    """Sample name of a mass point: signal_m110, signal_m122p5."""
    return "signal_m" + f"{float(mass):g}".replace(".", "p")


def nominal_mass(config: Mapping[str, Any]) -> float:
    """Higgs mass of the nominal signal sample: its generate.higgs_mass, else 125 GeV."""
    scan = config["mass_scan"]
    spec = config["samples"][scan.get("nominal_sample", "signal")]
    return float(spec.get("generate", {}).get("higgs_mass", SM_HIGGS_MASS))


def scan_samples(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Sample specs of the mass points other than the nominal one ({} without `mass_scan`)."""
    scan = config.get("mass_scan")
    if not scan:
        return {}
    name = scan.get("nominal_sample", "signal")
    if name not in config["samples"] or config["samples"][name]["kind"] != "signal":
        raise ValueError(f"mass_scan.nominal_sample {name!r} is not a signal sample of `samples`")
    nominal = config["samples"][name]
    if "generate" not in nominal:
        raise ValueError(f"mass_scan needs a generated nominal signal sample; samples.{name} has files")
    if not any(math.isclose(m, nominal_mass(config)) for m in scan["masses"]):
        raise ValueError(
            f"mass_scan.masses {scan['masses']} lack the nominal mass {nominal_mass(config)} GeV"
        )
    sig = scan["signal"]
    xsec = sig.get("xsec_pb", nominal.get("xsec_pb"))
    if xsec is None:
        raise ValueError("mass_scan.signal.xsec_pb is needed where the nominal signal sample has a k_factor")
    out = {}
    for m in sorted(scan["masses"]):
        if math.isclose(m, nominal_mass(config)):
            continue
        generate = {
            **nominal["generate"],
            "n_events": int(sig["n_events"]),
            "n_chunks": int(sig["n_chunks"]),
            "seed": int(sig["seed"]) + round(10 * float(m)),
            "higgs_mass": float(m),
        }
        out[point_sample(m)] = {"kind": "signal", "xsec_pb": float(xsec), "generate": generate}
    return out


def sample_masses(config: Mapping[str, Any]) -> dict[str, float]:
    """Generated Higgs mass of every signal sample of the scan, the nominal one included."""
    scan = config["mass_scan"]
    out = {scan.get("nominal_sample", "signal"): nominal_mass(config)}
    out |= {s: float(v["generate"]["higgs_mass"]) for s, v in scan_samples(config).items()}
    return out


def strategy_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a mass-scan run's training needs (training.RunSpec.mass_scan): mass points, the mass of each
    signal sample, the nominal mass and the muNN's mllg bin edges."""
    scan = config.get("mass_scan")
    if not scan:
        raise ValueError(
            "a loss with strategy munn or pnn needs the config block `mass_scan` (config/mass_scan.yaml)"
        )
    masses = sorted(float(m) for m in scan["masses"])
    return {
        "masses": masses,
        "sample_masses": sample_masses(config),
        "nominal_mass": nominal_mass(config),
        "edges": bin_edges(masses, float(scan.get("bin_width", 5.0))).tolist(),
    }


def loss_strategy(config: Mapping[str, Any], loss: str) -> str:
    """The strategy of a loss entry (standard where unset)."""
    return config["losses"][loss].get("strategy", STANDARD)


def reads_scan_samples(config: Mapping[str, Any], loss: str) -> bool:
    """Whether a training job of this loss reads the mass-scan points (a munn or pnn strategy)."""
    return loss_strategy(config, loss) != STANDARD


def run_scan_spec(config: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """Keys a training job's spec gains for a mass-scan strategy ({} for standard: its params stay as they
    were)."""
    strategy = loss_strategy(config, loss)
    if strategy == STANDARD:
        return {}
    return {"strategy": strategy, "mass_scan": strategy_spec(config)}


def problems(config: Mapping[str, Any]) -> list[str]:
    """Broken constraints of the mass scan (hzg.config_checks.problems): a scan strategy without `mass_scan`,
    evaluated runs not in `runs`, a mass point's sample name taken by a sample of `samples`."""
    out = []
    scan_runs = [
        run_name(r["model"], r["loss"])
        for r in config["runs"]
        if r["loss"] in config["losses"] and loss_strategy(config, r["loss"]) != STANDARD
    ]
    scan = config.get("mass_scan")
    if not scan:
        if scan_runs:
            out.append(
                f"runs {scan_runs} train with a mass-scan strategy (munn, pnn) but there is no mass_scan"
            )
        return out
    names = run_names(config["runs"])
    missing = [r for r in scan["runs"] if r not in names]
    if missing:
        out.append(f"mass_scan.runs {missing} are not runs of `runs` ({', '.join(names)})")
    try:
        taken = sorted(set(scan_samples(config)) & set(config["samples"]))
    except ValueError as err:
        return out + [str(err)]
    if taken:
        out.append(f"samples {taken} have the names of mass-scan points: rename them")
    return out
