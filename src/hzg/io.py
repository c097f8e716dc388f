"""Reading and writing n-tuples with uproot: branch maps, clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import datetime
import glob
import itertools
import json
import math
import os
import tempfile
import types
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hzg import faults

#: Object fields the analysis reads from every collection; `gen_pt` is optional (truth).
OBJECT_FIELDS = ("pt", "eta", "phi", "charge", "gen_pt")
#: Collections read only where the n-tuple has them (a branch map's `optional` list): the jets, which
#: n-tuples generated before the jets were added, or a Delphes card without jets, lack. Events then have
#: no such field; what needs it (the object model's inputs) says so (`hzg.data.objects`).
OPTIONAL_COLLECTIONS = ("jet",)

#: Branch maps: where each quantity lives in a layout of n-tuple.
BRANCH_MAPS: dict[str, dict[str, Any]] = {
    # the NanoAOD-like layout the generation stage writes
    "nanoaod": {
        "tree": "Events",
        "weight": "genWeight",
        "collections": {
            "electron": {
                "pt": "Electron_pt",
                "eta": "Electron_eta",
                "phi": "Electron_phi",
                "charge": "Electron_charge",
                "gen_pt": "Electron_genPt",
            },
            "muon": {
                "pt": "Muon_pt",
                "eta": "Muon_eta",
                "phi": "Muon_phi",
                "charge": "Muon_charge",
                "gen_pt": "Muon_genPt",
            },
            "photon": {"pt": "Photon_pt", "eta": "Photon_eta", "phi": "Photon_phi", "gen_pt": "Photon_genPt"},
            "jet": {
                "pt": "Jet_pt",
                "eta": "Jet_eta",
                "phi": "Jet_phi",
                "mass": "Jet_mass",
                "gen_pt": "Jet_genPt",
            },
        },
        "metadata": {
            "tree": "Runs",
            "n_generated": "genEventCount",
            "sum_weights": "genEventSumw",
            "sigma_gen_pb": "sigmaGen_pb",
        },
    },
    # Delphes 3 output trees (split TClonesArray branches)
    "delphes": {
        "tree": "Delphes",
        "weight": "Event.Weight",
        "collections": {
            "electron": {
                "pt": "Electron.PT",
                "eta": "Electron.Eta",
                "phi": "Electron.Phi",
                "charge": "Electron.Charge",
            },
            "muon": {"pt": "Muon.PT", "eta": "Muon.Eta", "phi": "Muon.Phi", "charge": "Muon.Charge"},
            "photon": {"pt": "Photon.PT", "eta": "Photon.Eta", "phi": "Photon.Phi"},
            "jet": {"pt": "Jet.PT", "eta": "Jet.Eta", "phi": "Jet.Phi", "mass": "Jet.Mass"},
        },
        "metadata": None,
    },
}


class InputError(RuntimeError):
    """An input file, tree or branch is missing or unreadable; the message names it."""


def resolve_branch_map(branch_map: str | Mapping[str, Any]) -> dict[str, Any]:
    """A branch map given by name (`nanoaod`, `delphes`) or inline as a mapping."""
    if isinstance(branch_map, str):
        if branch_map not in BRANCH_MAPS:
            raise KeyError(
                f"config key 'branch_map': unknown map {branch_map!r}; known: {sorted(BRANCH_MAPS)}"
            )
        return BRANCH_MAPS[branch_map]
    return dict(branch_map)


def open_tree(path: str | os.PathLike, tree: str) -> uproot.TTree:
    """Open `tree` in the ROOT file `path`, with errors that name the file and tree."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    try:
        rootfile = uproot.open(path)
    except Exception as err:  # uproot raises many kinds for corrupt or non-ROOT files
        raise InputError(f"cannot read {path} as a ROOT file: {err}") from err
    try:
        obj = rootfile[tree]
    except Exception as err:
        raise InputError(f"{path} has no tree {tree!r} (keys: {rootfile.keys(cycle=False)})") from err
    if not isinstance(obj, uproot.behaviors.TTree.TTree):
        raise InputError(f"{path}: {tree!r} is a {type(obj).__name__}, not a TTree")
    return obj


def _branch_keys(tree: uproot.TTree) -> frozenset[str]:
    """Every branch name of `tree`, nested ones as uproot spells them (`Electron/Electron.PT`)."""
    return frozenset(tree.keys(recursive=True))


def _spelled(name: str, keys: frozenset[str]) -> str | None:
    """Branch `name` as uproot spells it among `keys` (`_branch_keys`), also inside a split Delphes branch
    (`Electron/Electron.PT`); None where the tree has no such branch."""
    return next((c for c in (name, f"{name.split('.')[0]}/{name}") if c in keys), None)


def _find_branch(tree: uproot.TTree, name: str, path: Path, keys: frozenset[str] | None = None) -> str:
    """`_spelled`, or an InputError naming the file, tree and branch. `keys`: `_branch_keys(tree)`, when the
    caller looks up several names (listing them costs more than the lookup)."""
    branch = _spelled(name, _branch_keys(tree) if keys is None else keys)
    if branch is None:
        raise InputError(f"{path}: tree {tree.name!r} has no branch {name!r}")
    return branch


def _read(tree: uproot.TTree, name: str, path: Path, keys: frozenset[str] | None = None) -> ak.Array:
    branch = _find_branch(tree, name, path, keys)
    try:
        return tree[branch].array(library="ak")
    except Exception as err:
        raise InputError(f"{path}: cannot read branch {branch!r} of tree {tree.name!r}: {err}") from err


def _read_many(
    tree: uproot.TTree, names: list[str], path: Path, keys: frozenset[str] | None = None
) -> dict[str, ak.Array]:
    """Several branches in one uproot call (a shared counter branch is read once), keyed by the names
    given."""
    keys = _branch_keys(tree) if keys is None else keys
    found = {name: _find_branch(tree, name, path, keys) for name in names}
    try:
        arrays = tree.arrays(list(dict.fromkeys(found.values())), library="ak", how=dict)
    except Exception:  # name the branch that cannot be read
        return {name: _read(tree, name, path, keys) for name in names}
    return {name: arrays[branch] for name, branch in found.items()}


def read_events(path: str | os.PathLike, branch_map: str | Mapping[str, Any]) -> ak.Array:
    """Events of one n-tuple as records: electron, muon, photon (jagged), jet where present, weight, entry.

    Photons may lack `charge` (Delphes); objects without truth get `gen_pt` = NaN. A collection of
    OPTIONAL_COLLECTIONS is left out where the tree has none of its branches, and read without truth
    where it lacks only its `gen_pt` branch; a part of one is an InputError naming what is missing.
    """
    path = Path(path)
    bmap = resolve_branch_map(branch_map)
    tree = open_tree(path, bmap["tree"])
    keys = _branch_keys(tree)
    collections = {}
    for coll, branches in bmap["collections"].items():
        if coll in OPTIONAL_COLLECTIONS:
            branches = _optional_collection(tree, coll, branches, keys, path)
            if branches is None:
                continue
        collections[coll] = branches
    names = [b for branches in collections.values() for b in branches.values()]
    weight_branch = bmap.get("weight")
    arrays = _read_many(tree, names + ([weight_branch] if weight_branch else []), path, keys)
    fields: dict[str, ak.Array] = {}
    for coll, branches in collections.items():
        columns = {field: arrays[branch] for field, branch in branches.items()}
        for field in ("pt", "eta", "phi", "charge", "mass"):  # gen_pt may be NaN: an object without truth
            if field in columns:
                check_finite_branch(columns[field], path, tree.name, branches[field])
        if "gen_pt" not in columns:  # no truth: same record type as with truth, NaN-filled
            columns["gen_pt"] = columns["pt"] * np.nan
        fields[coll] = ak.zip(columns)
    fields["weight"] = _event_weights(tree, bmap, path, arrays.get(weight_branch))
    fields["entry"] = ak.Array(np.arange(tree.num_entries, dtype=np.int64))
    return ak.zip(fields, depth_limit=1)


def _optional_collection(
    tree: uproot.TTree, coll: str, branches: Mapping[str, str], keys: frozenset[str], path: Path
) -> dict[str, str] | None:
    """The branches to read of an optional collection: None where the tree has none of them (no such
    collection), all but `gen_pt` where only the truth is missing; raises InputError, naming the file and the
    missing branches, where the tree holds only a part of the collection."""
    present = {field: branch for field, branch in branches.items() if _spelled(branch, keys) is not None}
    missing = [branch for field, branch in branches.items() if field not in present and field != "gen_pt"]
    if not present:
        return None
    if missing:
        raise InputError(
            f"{path}: tree {tree.name!r} holds part of the {coll} collection but has no branch "
            f"{', '.join(map(repr, missing))} (have {', '.join(map(repr, present.values()))})"
        )
    return present


def read_metadata(path: str | os.PathLike, branch_map: str | Mapping[str, Any]) -> dict[str, float]:
    """Generated events and sum of generator weights of one n-tuple.

    From the metadata tree where the layout has one (NanoAOD `Runs`), else from the events tree
    itself (every generated event is stored, as in Delphes output).
    """
    path = Path(path)
    bmap = resolve_branch_map(branch_map)
    meta = bmap.get("metadata")
    if meta:
        tree = open_tree(path, meta["tree"])
        out = {}
        for key in ("n_generated", "sum_weights"):
            values = _read(tree, meta[key], path)
            check_finite_branch(values, path, tree.name, meta[key])
            out[key] = float(np.sum(values))
        if meta.get("sigma_gen_pb") and meta["sigma_gen_pb"] in tree.keys():
            # optional: the generator's cross-section of what this file holds (mean over its runs, by events)
            n = np.asarray(_read(tree, meta["n_generated"], path), np.float64)
            out["sigma_gen_pb"] = float(
                np.sum(np.asarray(_read(tree, meta["sigma_gen_pb"], path)) * n) / np.sum(n)
            )
        return out
    tree = open_tree(path, bmap["tree"])
    return {
        "n_generated": float(tree.num_entries),
        "sum_weights": float(np.sum(_event_weights(tree, bmap, path))),
    }


def check_finite_branch(
    values: ak.Array | np.ndarray, path: str | os.PathLike, tree: str, branch: str
) -> None:
    """Raise InputError naming the file, tree, branch and first entries where a branch holds NaN or
    infinity."""
    values = ak.Array(values) if not isinstance(values, ak.Array) else values
    flat = ak.to_numpy(ak.flatten(values, axis=None)) if values.ndim > 1 else ak.to_numpy(values)
    if np.isfinite(
        flat
    ).all():  # the common case, in numpy; the entries are found only when something is wrong
        return
    bad = ~np.isfinite(values)
    while bad.ndim > 1:  # jagged: an entry is bad if any of its objects is
        bad = ak.any(bad, axis=-1)
    entries = np.flatnonzero(ak.to_numpy(bad))
    if entries.size:
        raise InputError(
            f"{path}: branch {branch!r} of tree {tree!r} is NaN or infinite in {entries.size} "
            f"entries, first entries {entries[:5].tolist()}"
        )


def _event_weights(
    tree: uproot.TTree, bmap: Mapping[str, Any], path: Path, weight: ak.Array | None = None
) -> ak.Array:
    """Per-event weights (float64), 1 where the layout has no weight branch. A Delphes weight is a one-element
    array per event: an entry with no element, or a non-finite weight, is an InputError naming the entry.
    `weight`: the weight branch when the caller has read it already."""
    if not bmap.get("weight"):
        return ak.Array(np.ones(tree.num_entries))
    if weight is None:
        weight = _read(tree, bmap["weight"], path)
    if weight.ndim > 1:
        empty = np.flatnonzero(ak.to_numpy(ak.num(weight, axis=1)) == 0)
        if empty.size:
            raise InputError(
                f"{path}: branch {bmap['weight']!r} of tree {tree.name!r} is empty in {empty.size} "
                f"entries, first entries {empty[:5].tolist()} (an event without its weight)"
            )
        weight = ak.fill_none(ak.firsts(weight, axis=1), np.nan)  # none left: every entry has its element
    check_finite_branch(weight, path, tree.name, bmap["weight"])
    return ak.values_astype(weight, np.float64)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed earlier attempt
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        _fsync(tmp)  # the data on disk before the rename: a power loss leaves the old file or the new one
        faults.before_replace(path)  # tests only (HZG_FAULT_AT): a kill at the worst moment
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)  # and the rename itself
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush a file (or a directory entry) to disk; directories that cannot be opened (some platforms) are
    skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The time stamp written into ROOT files (their keys, directories and header): SOURCE_DATE_EPOCH when set,
#: else
#: 2000-01-01. With the UUIDs derived from the file name, the same trees give the same bytes in every run.
def _root_timestamp() -> datetime.datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.datetime(2000, 1, 1) if epoch is None else datetime.datetime.fromtimestamp(int(epoch))


@contextlib.contextmanager
def _reproducible_uproot() -> Iterator[None]:
    """uproot writes the wall-clock time into every key and directory: freeze it while writing (one
    process)."""
    import uproot.writing._cascade as cascade
    import uproot.writing._cascadetree as cascadetree
    import uproot.writing.writable as writable

    stamp = _root_timestamp()

    class _Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ARG003
            return stamp

    frozen = types.SimpleNamespace(datetime=_Frozen)
    modules = [cascade, cascadetree, writable]
    saved = [m.datetime for m in modules]
    try:
        for module in modules:
            module.datetime = frozen
        yield
    finally:
        for module, original in zip(modules, saved):
            module.datetime = original


def write_root(path: str | os.PathLike, trees: Mapping[str, Mapping[str, Any]]) -> None:
    """Write trees {name: {branch: array}} to a ROOT file atomically and reproducibly: fixed time stamps
    (`_root_timestamp`) and UUIDs derived from the file name, so the same content gives the same bytes."""
    path = Path(path)
    uuids = (uuid.uuid5(uuid.NAMESPACE_URL, f"hzg:{path.name}:{i}") for i in itertools.count())
    with atomic_path(path) as tmp, _reproducible_uproot():
        sink = open(tmp, "w+b", buffering=0)  # noqa: SIM115 (uproot closes it)
        sink.name = path.name  # uproot writes the file's name into it: the final one, not the temporary one
        with uproot.recreate(sink, uuid_function=lambda: next(uuids)) as out:
            for name, branches in trees.items():
                out.mktree(name, dict(branches))  # a TTree (assignment would write an RNTuple)


def strict_json(payload: Any) -> Any:
    """`payload` with NaN and +-infinity replaced by None (JSON null) and numpy scalars and arrays as Python
    ones:
    what `json.dumps(..., allow_nan=False)` accepts (NaN and Infinity are not JSON)."""
    if isinstance(payload, Mapping):
        return {key: strict_json(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [strict_json(value) for value in payload]
    if isinstance(payload, np.ndarray):
        return strict_json(payload.tolist())
    if isinstance(payload, np.generic):
        payload = payload.item()
    if isinstance(payload, float) and not math.isfinite(payload):
        return None
    return payload


def dumps_json(payload: Any) -> str:
    """Strict JSON text (`strict_json`: non-finite numbers as null), indented, keys sorted,
    newline-terminated."""
    return json.dumps(strict_json(payload), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write strict JSON atomically (`dumps_json`)."""
    text = dumps_json(payload)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """The column names of the Parquet file `path`, from its footer (no data read); a missing or unreadable
    file raises an error that names it."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"Parquet file {path} does not exist") from err
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a truncated or foreign file
        raise ValueError(f"cannot read the Parquet file {path}: {err}") from err


def read_parquet_frames(paths: Sequence[str | os.PathLike], columns: Sequence[str]):
    """The Parquet files `paths` as one pandas DataFrame (rows in file order), reading only those of
    `columns` each file has: a column a file lacks is left to the caller's own check, which names it."""
    import pandas as pd

    frames = []
    for path in paths:
        have = set(parquet_columns(path))
        frames.append(pd.read_parquet(path, columns=[c for c in dict.fromkeys(columns) if c in have]))
    return pd.concat(frames, ignore_index=True)
