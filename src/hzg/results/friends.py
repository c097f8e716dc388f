"""Friend trees: one entry per entry of an input n-tuple, in the same order, with the classifier
scores, the preselection flag and the event key."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pandas as pd
from tqdm import tqdm

from hzg import io
from hzg.data import features, objects, selection
from hzg.learn.classifier import Classifier

log = logging.getLogger(__name__)

#: Score written for events that fail the preselection (scores are probabilities in [0, 1]).
SENTINEL = -1.0


def score_branch(classifier: Classifier) -> str:
    """Branch name of a classifier's score: score_<model>_<loss>."""
    return f"score_{classifier.name}"


def friend_columns(
    events: ak.Array,
    cuts: selection.Cuts,
    res_map: Mapping[str, Any],
    classifiers: Sequence[Classifier],
    sample: str,
    chunk: int,
    objects_cfg: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Branches of the friend tree of `events` (all entries of one n-tuple, in order); with `objects_cfg`
    (config `objects`, given when a run reads objects or jet features) the scored frame also carries the
    object block and, where there are two jet slots, the jet features (NaN where missing), built as the skim
    and features build them."""
    cols = selection.candidate_columns(events)  # the skim's candidates, bit for bit
    passed = selection.passes_all(selection.cut_masks(cols, cuts))
    n = len(events)
    out: dict[str, np.ndarray] = {
        "sample_id": np.full(n, features.sample_id(sample), dtype=np.int64),
        "chunk": np.full(n, chunk, dtype=np.int32),
        "entry": ak.to_numpy(events.entry).astype(np.int64),
        "passed_preselection": passed,
        "mllg": np.where(passed, cols["mllg"], SENTINEL),
    }
    # the features stage's columns, every one of them also for a chunk where no event passes (an empty frame)
    frame = features.compute_features({k: v[passed] for k, v in cols.items()}, res_map)
    if objects_cfg is not None:
        skim = {k: v[passed] for k, v in cols.items()}
        skim.update(objects.skim_columns(events[passed], skim, objects_cfg))
        block = pd.DataFrame(objects.feature_block(skim, objects_cfg), index=frame.index)
        if "jet1_pt" in skim:
            block = pd.concat([block, features.jet_features(skim).set_axis(frame.index)], axis=1)
        frame = pd.concat([frame, block], axis=1)
    for clf in classifiers:
        score = np.full(n, SENTINEL, dtype=np.float64)  # the scores as the models give them (float64)
        score[passed] = clf.predict(frame)
        out[score_branch(clf)] = score
    return out


def write_sample_friends(
    ntuples: Sequence[str | Path],
    chunk_ids: Sequence[int],
    outdir: str | Path,
    sample: str,
    branch_map: Mapping[str, Any],
    cuts: selection.Cuts,
    res_map: Mapping[str, Any],
    classifiers: Sequence[Classifier],
    tree: str,
    objects_cfg: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[Path]:
    """The friend tree of every n-tuple of one sample, `outdir`/<chunk>.root, one n-tuple at a time (read,
    score, write atomically), so a sample costs one start-up and one loading of the models, not one per chunk.

    Raises:
        ValueError: the n-tuples and the chunk ids do not pair up one to one.
    """
    if len(ntuples) != len(chunk_ids):
        raise ValueError(
            f"sample {sample!r}: {len(ntuples)} n-tuples for {len(chunk_ids)} chunks; the friend trees pair "
            "them one to one"
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, chunk in tqdm(
        list(zip(ntuples, chunk_ids)), desc=f"friends {sample}", disable=not progress, mininterval=5
    ):
        events = io.read_events(path, branch_map)
        cols = friend_columns(events, cuts, res_map, classifiers, sample, int(chunk), objects_cfg=objects_cfg)
        out = outdir / f"{int(chunk)}.root"
        io.write_root(out, {tree: cols})
        log.info(
            "%s: %d entries, %d pass the preselection -> %s",
            path,
            len(events),
            int(cols["passed_preselection"].sum()),
            out,
        )
        written.append(out)
    if written:
        log.info("branches: %s", sorted(cols))
    return written
