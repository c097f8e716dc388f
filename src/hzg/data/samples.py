"""Merging the per-chunk outputs of a sample: skimmed candidates and cutflows with their metadata."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hzg import io

_CHUNK = re.compile(r"(\d+)\.(?:root|cutflow\.json)$")


def chunk_of(path: str | Path) -> int:
    """Chunk number encoded in a per-chunk output name (`.../{chunk}.root`)."""
    match = _CHUNK.search(str(path))
    if not match:
        raise ValueError(f"cannot tell the chunk of {path}: expected a name like 3.root or 3.cutflow.json")
    return int(match.group(1))


def read_cutflows(paths: Sequence[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Per-chunk cutflow records grouped by sample, in chunk order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        grouped.setdefault(record["sample"], []).append(record)
    return {s: sorted(r, key=lambda rec: rec["chunk"]) for s, r in grouped.items()}


def sum_cutflows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Add the cutflows of several chunks cut by cut."""
    rows = [dict(row) for row in records[0]["cutflow"]]
    for rec in records[1:]:
        if [r["cut"] for r in rec["cutflow"]] != [r["cut"] for r in rows]:
            raise ValueError(f"cutflow of chunk {rec['chunk']} of {rec['sample']} has different cuts")
        for row, other in zip(rows, rec["cutflow"]):
            row["n_raw"] += other["n_raw"]
            row["sum_weights"] += other["sum_weights"]
    return rows


def generator_xsec_pb(records: Sequence[Mapping[str, Any]]) -> float | None:
    """The generator's cross-section of a sample: mean of its chunks' sigma_gen_pb weighted by their events.

    None when a chunk has no generator cross-section (an input n-tuple without one).
    """
    if not records or any("sigma_gen_pb" not in r for r in records):
        return None
    n = np.array([r["n_generated"] for r in records], np.float64)
    return float(np.sum(np.array([r["sigma_gen_pb"] for r in records]) * n) / np.sum(n))


def sample_xsec_pb(
    sample: str, normalisation: Mapping[str, float], records: Sequence[Mapping[str, Any]]
) -> float:
    """Cross-section used for a sample's weights: `xsec_pb` as given, or `k_factor` x the generator's."""
    if "xsec_pb" in normalisation:
        return float(normalisation["xsec_pb"])
    sigma = generator_xsec_pb(records)
    if sigma is None:
        sources = ", ".join(str(r.get("source", "?")) for r in records[:3])
        raise ValueError(
            f"samples.{sample}.k_factor needs the generator cross-section (Runs/sigmaGen_pb) in every "
            f"n-tuple, and {sources} has none: give samples.{sample}.xsec_pb instead"
        )
    return float(normalisation["k_factor"]) * sigma


def merge_cutflows(
    paths: Sequence[str | Path], normalisation: Mapping[str, Mapping[str, float]], luminosity_fb: float
) -> tuple[dict[str, list[dict[str, float]]], dict[str, float], dict[str, float]]:
    """Summed cutflow per sample, the expected events per unit generator weight and the cross-section used."""
    grouped = read_cutflows(paths)
    flows = {s: sum_cutflows(recs) for s, recs in grouped.items()}
    xsec = {s: sample_xsec_pb(s, normalisation[s], recs) for s, recs in grouped.items()}
    per_weight = {
        s: xsec[s] * luminosity_fb * 1000.0 / sum(r["sum_weights"] for r in recs)
        for s, recs in grouped.items()
    }
    return flows, per_weight, xsec


def read_skims(paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """Concatenate the `Skim` trees of several chunks, adding a `chunk` column; chunk order kept."""
    parts = []
    for path in sorted(paths, key=chunk_of):
        tree = io.open_tree(path, "Skim")
        cols = {k: np.asarray(v) for k, v in tree.arrays(library="np").items()}
        cols["chunk"] = np.full(len(cols["entry"]), chunk_of(path), dtype=np.int32)
        parts.append(cols)
    if not parts:
        raise ValueError("no skim files given")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
