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


def merge_cutflows(paths: Sequence[str | Path], xsec_pb: Mapping[str, float],
                   lumi_fb: float) -> tuple[dict[str, list[dict[str, float]]], dict[str, float]]:
    """Summed cutflow per sample, and the expected events per unit generator weight of each sample."""
    grouped = read_cutflows(paths)
    flows = {s: sum_cutflows(recs) for s, recs in grouped.items()}
    per_weight = {s: xsec_pb[s] * lumi_fb * 1000.0 / sum(r["sum_weights"] for r in recs) for s, recs in grouped.items()}
    return flows, per_weight


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
