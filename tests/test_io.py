"""Tests for hzg.io: NanoAOD-like and Delphes layouts, metadata, errors, atomic writes."""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pytest
import uproot

from hzg import io
from hzg.data.generate import ChunkInfo, ChunkSpec, nanoaod_trees
from hzg.io import (
    InputError,
    atomic_path,
    read_events,
    read_metadata,
    resolve_branch_map,
    write_json,
    write_root,
)
from hzg.data.selection import Cuts, preselect

# ---------------------------------------------------------------- the events used throughout
# Four events; per collection, lists of (pt, eta, phi, charge, gen_pt).  Events 0 and 2 pass the
# preselection (mumu at rest, mllg ~125 GeV; ee with m ~92 GeV, mllg ~164 GeV).
ELECTRONS = [
    [],
    [(30.0, 0.5, 1.0, -1, 31.0)],
    [(47.0, 0.2, 0.0, +1, 46.5), (45.0, 0.2, np.pi, -1, 44.0), (10.0, -1.0, 2.0, -1, 11.0)],
    [],
]
MUONS = [
    [(45.0, 0.0, np.pi, +1, 45.5), (45.0, 0.0, 0.0, -1, 44.5)],
    [(22.0, 1.5, -1.0, +1, 22.5)],
    [],
    [(50.0, -0.3, 0.1, +1, 50.0), (40.0, 0.3, 2.0, +1, 41.0)],
]
PHOTONS = [
    [(20.0, 1.0, 1.0, 0, 19.0), (41.8, 0.0, np.pi / 2, 0, 42.0)],
    [],
    [(80.0, -0.5, -np.pi / 2, 0, 79.0)],
    [(35.0, 0.0, 1.0, 0, 36.0)],
]
WEIGHTS = np.array([1.25, -0.5, 2.0, 0.75])
RUNS = ChunkInfo(n_generated=10, sum_weights=7.5, sigma_gen_pb=1.5, sigma_err_pb=0.1)
SPEC = ChunkSpec(process="ggH_Zgamma", n_events=10, seed=123)


def _jagged(rows, index, dtype):
    return ak.Array([np.array([obj[index] for obj in objs], dtype=dtype) for objs in rows])


def _objects(rows, with_charge):
    fields = {
        "pt": _jagged(rows, 0, np.float64),
        "eta": _jagged(rows, 1, np.float64),
        "phi": _jagged(rows, 2, np.float64),
    }
    if with_charge:
        fields["charge"] = _jagged(rows, 3, np.int32)
    fields["genPt"] = _jagged(rows, 4, np.float64)
    return ak.zip(fields)


def objects_dict():
    """What hzg.data.detector.reconstruct returns (only the fields the analysis reads)."""
    return {
        "Electron": _objects(ELECTRONS, True),
        "Muon": _objects(MUONS, True),
        "Photon": _objects(PHOTONS, False),
    }


def write_nanoaod(path, drop=(), extra=None):
    trees = nanoaod_trees({**objects_dict(), **(extra or {})}, ak.Array(WEIGHTS), RUNS, SPEC, chunk=3)
    if drop:  # rewrite the Events tree as flat branches without the named ones
        events = {}
        for name, value in trees["Events"].items():
            if isinstance(value, ak.Array) and value.fields:
                for field in value.fields:
                    events[f"{name}_{field}"] = value[field]
            else:
                events[name] = value
        trees["Events"] = {k: v for k, v in events.items() if k not in drop}
    write_root(path, trees)
    return path


def delphes_branches():
    branches = {}
    for coll, rows, with_charge in (
        ("Electron", ELECTRONS, True),
        ("Muon", MUONS, True),
        ("Photon", PHOTONS, False),
    ):
        branches[f"{coll}.PT"] = _jagged(rows, 0, np.float64)
        branches[f"{coll}.Eta"] = _jagged(rows, 1, np.float64)
        branches[f"{coll}.Phi"] = _jagged(rows, 2, np.float64)
        if with_charge:
            branches[f"{coll}.Charge"] = _jagged(rows, 3, np.int32)
    branches["Event.Weight"] = ak.Array([[w] for w in WEIGHTS])
    return branches


def write_delphes(path):
    with uproot.recreate(path) as f:
        f.mktree("Delphes", delphes_branches())  # a TTree; assignment would write an RNTuple
    return path


@pytest.fixture
def nano_file(tmp_path):
    return write_nanoaod(tmp_path / "nano.root")


@pytest.fixture
def delphes_file(tmp_path):
    return write_delphes(tmp_path / "delphes.root")


def _expected(rows, with_charge, with_gen):
    out = []
    for objs in rows:
        ev = []
        for pt, eta, phi, charge, gen in objs:
            rec = {"pt": pt, "eta": eta, "phi": phi}
            if with_charge:
                rec["charge"] = charge
            if with_gen:
                rec["gen_pt"] = gen
            ev.append(rec)
        out.append(ev)
    return out


def _mass(objs, lepton_mass):
    """Invariant mass of (pt, eta, phi, charge, gen_pt) objects; charge 0 marks a photon."""
    tot = np.zeros(4)
    for pt, eta, phi, charge, _ in objs:
        m = lepton_mass if charge else 0.0
        p = np.array([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
        tot += np.concatenate([[np.sqrt(p @ p + m * m)], p])
    return float(np.sqrt(tot[0] ** 2 - tot[1:] @ tot[1:]))


# ---------------------------------------------------------------- NanoAOD layout
def test_write_root_nanoaod_layout_branches(nano_file):
    with uproot.open(nano_file) as f:
        assert set(f.keys(cycle=False)) == {"Events", "Runs"}
        keys = set(f["Events"].keys())
        assert {
            "Electron_pt",
            "Electron_charge",
            "Electron_genPt",
            "Muon_eta",
            "Photon_phi",
            "Photon_genPt",
            "genWeight",
            "event",
            "chunk",
        } <= keys
        assert "Photon_charge" not in keys
        assert f["Events"].num_entries == 4
        assert f["Events"]["chunk"].array(library="np").tolist() == [3, 3, 3, 3]
        assert f["Runs"]["seed"].array(library="np").tolist() == [123]
    assert [p.name for p in nano_file.parent.iterdir()] == ["nano.root"]  # no temporary left


def test_read_events_nanoaod(nano_file):
    events = read_events(nano_file, "nanoaod")
    assert len(events) == 4
    assert ak.fields(events) == ["electron", "muon", "photon", "weight", "entry"]
    assert events.electron.to_list() == _expected(ELECTRONS, True, True)
    assert events.muon.to_list() == _expected(MUONS, True, True)
    assert events.photon.to_list() == _expected(PHOTONS, False, True)
    assert events.weight.to_list() == [1.25, -0.5, 2.0, 0.75]
    assert events.entry.to_list() == [0, 1, 2, 3]
    assert str(ak.type(events.weight)) == "4 * float64"
    assert str(ak.type(events.entry)) == "4 * int64"


def test_read_events_accepts_str_path_and_inline_map(nano_file):
    inline = {
        "tree": "Events",
        "weight": None,
        "collections": {"muon": {"pt": "Muon_pt", "charge": "Muon_charge"}},
    }
    events = read_events(str(nano_file), inline)
    assert ak.fields(events) == ["muon", "weight", "entry"]
    assert events.muon.pt.to_list() == [[45.0, 45.0], [22.0], [], [50.0, 40.0]]
    assert events.muon.charge.to_list() == [[1, -1], [1], [], [1, 1]]
    assert events.weight.to_list() == [1.0, 1.0, 1.0, 1.0]  # no weight branch: unit weights


def test_read_metadata_nanoaod_from_runs_tree(nano_file):
    assert read_metadata(nano_file, "nanoaod") == {
        "n_generated": 10.0,
        "sum_weights": 7.5,
        "sigma_gen_pb": 1.5,
    }


def test_read_metadata_sums_over_several_runs_rows(tmp_path):
    path = tmp_path / "merged.root"
    write_root(
        path,
        {
            "Runs": {
                "genEventCount": np.array([10, 32], dtype=np.int64),
                "genEventSumw": np.array([7.5, -2.25]),
            }
        },
    )
    assert read_metadata(path, "nanoaod") == {"n_generated": 42.0, "sum_weights": 5.25}


# ---------------------------------------------------------------- Delphes layout
def test_read_events_delphes_same_physics_as_nanoaod(nano_file, delphes_file):
    with uproot.open(delphes_file) as f:
        assert "Electron.PT" in f["Delphes"].keys()
    dl = read_events(delphes_file, "delphes")
    nano = read_events(nano_file, "nanoaod")
    assert ak.fields(dl) == ["electron", "muon", "photon", "weight", "entry"]
    assert dl.electron[["pt", "eta", "phi", "charge"]].to_list() == _expected(ELECTRONS, True, False)
    assert dl.muon[["pt", "eta", "phi", "charge"]].to_list() == _expected(MUONS, True, False)
    assert dl.photon[["pt", "eta", "phi"]].to_list() == _expected(PHOTONS, False, False)
    assert ak.fields(dl.photon) == ["pt", "eta", "phi", "gen_pt"]  # Delphes photons have no charge
    for coll in ("electron", "muon", "photon"):  # no truth: gen_pt is there, NaN everywhere
        assert ak.all(np.isnan(ak.flatten(dl[coll].gen_pt)))
        for field in ak.fields(dl[coll]):
            if field != "gen_pt":
                assert dl[coll][field].to_list() == nano[coll][field].to_list(), (coll, field)
    assert dl.weight.to_list() == nano.weight.to_list() == [1.25, -0.5, 2.0, 0.75]
    assert dl.entry.to_list() == [0, 1, 2, 3]
    assert str(ak.type(dl.weight)) == "4 * float64"


def test_read_events_delphes_empty_weight_is_an_error_naming_file_branch_entry(tmp_path):
    branches = delphes_branches()
    branches["Event.Weight"] = ak.Array([[1.5], [], [2.0], [0.5]])
    path = tmp_path / "d.root"
    with uproot.recreate(path) as f:
        f.mktree("Delphes", branches)
    for read in (read_events, read_metadata):
        with pytest.raises(InputError) as err:
            read(path, "delphes")
        assert str(err.value) == (
            f"{path}: branch 'Event.Weight' of tree 'Delphes' is empty in 1 entries, "
            "first entries [1] (an event without its weight)"
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_event_weight_is_an_error_naming_file_branch_entry(tmp_path, bad):
    branches = delphes_branches()
    branches["Event.Weight"] = ak.Array([[1.5], [0.5], [2.0], [bad]])
    path = tmp_path / "d.root"
    with uproot.recreate(path) as f:
        f.mktree("Delphes", branches)
    for read in (read_events, read_metadata):
        with pytest.raises(
            InputError,
            match=r"branch 'Event.Weight' of tree 'Delphes' is NaN or infinite in 1 "
            r"entries, first entries \[3\]",
        ) as err:
            read(path, "delphes")
        assert str(path) in str(err.value)


@pytest.mark.parametrize("branch", ["genEventSumw", "genEventCount"])
def test_non_finite_sum_weights_is_an_error_naming_file_branch(tmp_path, branch):
    path = write_nanoaod(tmp_path / "nano.root")
    with uproot.open(path) as f:
        trees = {name: f[name].arrays(library="np") for name in ("Events", "Runs")}
    trees["Runs"][branch] = np.array([np.nan])
    write_root(path, trees)
    with pytest.raises(
        InputError,
        match=rf"{path}: branch '{branch}' of tree 'Runs' is NaN or infinite in 1 "
        r"entries, first entries \[0\]",
    ):
        read_metadata(path, "nanoaod")


@pytest.mark.parametrize("branch", ["Muon_pt", "Muon_eta", "Photon_phi", "Electron_pt"])
def test_nan_kinematics_is_an_error_naming_file_branch_entry(tmp_path, branch):
    path = write_nanoaod(tmp_path / "nano.root")
    with uproot.open(path) as f:
        events = f["Events"].arrays(library="ak")
        runs = f["Runs"].arrays(library="np")
    columns = {name: events[name] for name in events.fields}
    entry = 2 if branch.startswith(("Electron", "Photon")) else 3  # an event with such an object
    values = ak.to_list(columns[branch])
    values[entry][0] = float("nan")
    columns[branch] = ak.Array(values)
    counts = {}
    for name in list(columns):  # write jagged collections back as NanoAOD does: counter + branches
        coll = name.split("_")[0]
        if name != "genWeight" and "_" in name and columns[name].ndim > 1:
            counts.setdefault(coll, {})[name[len(coll) + 1 :]] = columns.pop(name)
    trees = {"Events": {**columns, **{c: ak.zip(f) for c, f in counts.items()}}, "Runs": runs}
    write_root(path, trees)
    with pytest.raises(InputError) as err:
        read_events(path, "nanoaod")
    assert str(err.value) == (
        f"{path}: branch {branch!r} of tree 'Events' is NaN or infinite in 1 entries, first entries [{entry}]"
    )


def test_nan_gen_pt_is_allowed(nano_file):
    """An object without truth has gen_pt NaN: not an input error."""
    events = read_events(
        nano_file,
        {
            **io.BRANCH_MAPS["nanoaod"],
            "collections": {
                "muon": {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi", "charge": "Muon_charge"}
            },
        },
    )
    assert ak.all(np.isnan(ak.flatten(events.muon.gen_pt)))


def test_read_metadata_delphes_counts_entries_and_sums_weights(delphes_file):
    assert read_metadata(delphes_file, "delphes") == {"n_generated": 4.0, "sum_weights": 3.5}


def test_preselect_identical_from_both_layouts(nano_file, delphes_file):
    cols_n, flow_n = preselect(read_events(nano_file, "nanoaod"), Cuts(), source=str(nano_file))
    cols_d, flow_d = preselect(read_events(delphes_file, "delphes"), Cuts(), source=str(delphes_file))
    assert cols_n["entry"].tolist() == [0, 2]
    assert cols_n["flavour"].tolist() == [13, 11]
    assert cols_n["lm_gen_pt"].tolist() == [44.5, 44.0]
    assert cols_n["g_pt"].tolist() == [41.8, 80.0]
    np.testing.assert_allclose(
        cols_n["mll"], [2 * np.hypot(45.0, 0.10566), _mass(ELECTRONS[2][:2], 0.000511)], rtol=1e-10
    )
    np.testing.assert_allclose(
        cols_n["mllg"],
        [_mass(MUONS[0] + PHOTONS[0][1:], 0.10566), _mass(ELECTRONS[2][:2] + PHOTONS[2], 0.000511)],
        rtol=1e-10,
    )
    assert 163.0 < cols_n["mllg"][1] < 165.0
    assert flow_n == flow_d
    # event 1 (e mu) and event 3 (mu+ mu+) have no same-flavour opposite-sign pair
    assert [r["n_raw"] for r in flow_n] == [4, 2, 2, 2, 2, 2, 2, 2, 2]
    assert [r["sum_weights"] for r in flow_n] == [3.5] + [3.25] * 8
    assert set(cols_n) == set(cols_d)
    for name in cols_n:
        if name.endswith("_gen_pt"):
            assert np.isnan(cols_d[name]).all(), name  # no truth in Delphes
        else:
            np.testing.assert_array_equal(cols_d[name], cols_n[name], err_msg=name)
            assert cols_d[name].dtype == cols_n[name].dtype, name


# ---------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    path = tmp_path / "nope.root"
    with pytest.raises(InputError) as err:
        read_events(path, "nanoaod")
    assert str(err.value) == f"input file {path} does not exist"
    with pytest.raises(InputError, match="nope.root"):
        read_metadata(path, "delphes")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_events(tmp_path, "nanoaod")


def test_not_a_root_file(tmp_path):
    path = tmp_path / "junk.root"
    path.write_bytes(b"this is not a ROOT file\n" * 40)
    with pytest.raises(InputError) as err:
        read_events(path, "nanoaod")
    assert str(err.value).startswith(f"cannot read {path} as a ROOT file: ")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.root"
    path.write_bytes(b"")
    with pytest.raises(InputError) as err:
        read_events(path, "delphes")
    assert str(err.value).startswith(f"cannot read {path} as a ROOT file: ")


def test_root_file_without_the_tree(delphes_file):
    with pytest.raises(InputError) as err:
        read_events(delphes_file, "nanoaod")
    assert str(err.value) == f"{delphes_file} has no tree 'Events' (keys: ['Delphes'])"


def test_root_file_without_metadata_tree(tmp_path):
    path = tmp_path / "noruns.root"
    write_root(path, {"Events": {"genWeight": np.array([1.0, 2.0])}})
    with pytest.raises(InputError) as err:
        read_metadata(path, "nanoaod")
    assert str(err.value) == f"{path} has no tree 'Runs' (keys: ['Events'])"


def test_object_that_is_not_a_ttree(tmp_path):
    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as f:
        f["Delphes"] = {"x": np.arange(3.0)}  # an RNTuple in this uproot version
    with pytest.raises(InputError) as err:
        read_events(path, "delphes")
    msg = str(err.value)
    assert msg.startswith(f"{path}: 'Delphes' is a ") and msg.endswith(", not a TTree")


def test_tree_missing_a_branch(tmp_path):
    path = write_nanoaod(tmp_path / "nophotoneta.root", drop=("Photon_eta",))
    with uproot.open(path) as f:  # the rewrite kept everything else
        assert "Photon_phi" in f["Events"].keys() and "Photon_eta" not in f["Events"].keys()
    with pytest.raises(InputError) as err:
        read_events(path, "nanoaod")
    assert str(err.value) == f"{path}: tree 'Events' has no branch 'Photon_eta'"


def test_delphes_tree_missing_a_branch(tmp_path):
    branches = delphes_branches()
    del branches["Muon.Charge"]
    path = tmp_path / "d.root"
    with uproot.recreate(path) as f:
        f.mktree("Delphes", branches)
    with pytest.raises(InputError) as err:
        read_events(path, "delphes")
    assert str(err.value) == f"{path}: tree 'Delphes' has no branch 'Muon.Charge'"


def test_unknown_branch_map_names_config_key(nano_file):
    with pytest.raises(KeyError) as err:
        read_events(nano_file, "miniaod")
    msg = err.value.args[0]
    assert msg == "config key 'branch_map': unknown map 'miniaod'; known: ['delphes', 'nanoaod']"
    with pytest.raises(KeyError, match="branch_map"):
        read_metadata(nano_file, "Delphes")


def test_resolve_branch_map():
    assert resolve_branch_map("delphes")["tree"] == "Delphes"
    assert resolve_branch_map("nanoaod")["metadata"]["tree"] == "Runs"
    inline = {"tree": "T", "collections": {}}
    out = resolve_branch_map(inline)
    assert out == inline and out is not inline


# ---------------------------------------------------------------- atomic writes
def test_write_root_failure_leaves_nothing(tmp_path):
    path = tmp_path / "out.root"
    with pytest.raises(TypeError):
        write_root(path, {"Events": {"x": np.array([object(), object()])}})
    assert list(tmp_path.iterdir()) == []


def test_write_root_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "out.root"
    write_root(path, {"Events": {"x": np.arange(3.0)}})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_root(path, {"Events": {"x": np.array([object()])}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.root"]
    with uproot.open(path) as f:
        assert f["Events"]["x"].array(library="np").tolist() == [0.0, 1.0, 2.0]


def test_atomic_path_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "result.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.startswith(".result.txt.") and tmp.name.endswith(".tmp")
        assert not target.exists()
        tmp.write_text("done\n")
    assert target.read_text() == "done\n"
    assert os.listdir(target.parent) == ["result.txt"]

    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("boom")
    assert target.read_text() == "done\n"
    assert os.listdir(target.parent) == ["result.txt"]


def test_write_json_atomic(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"b": 1, "a": [1.5]})
    assert path.read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert path.read_text().startswith('{\n  "a"')
    assert os.listdir(tmp_path) == ["a.json"]


def test_every_collection_is_read_with_the_object_fields(nano_file, delphes_file):
    """OBJECT_FIELDS is what the analysis reads: every collection of both layouts comes back with exactly
    those
    fields (photons without charge), whatever the branch map names them."""
    for path, layout in ((nano_file, "nanoaod"), (delphes_file, "delphes")):
        events = read_events(path, layout)
        for coll in ("electron", "muon", "photon"):
            expected = [f for f in io.OBJECT_FIELDS if not (coll == "photon" and f == "charge")]
            assert ak.fields(events[coll]) == expected, (layout, coll)


def test_atomic_path_flushes_the_data_to_disk_before_the_rename(tmp_path, monkeypatch):
    """Power loss: the file's data are fsync'ed before os.replace, and the directory after it."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        io.os,
        "fsync",
        lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)),
    )
    monkeypatch.setattr(
        io.os, "replace", lambda a, b: (calls.append(("replace", str(b))), real_replace(a, b))
    )
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"]
    assert calls[0][1] == str(tmp)
    assert calls[1][1] == str(target)
    assert calls[2][1] == str(tmp_path)


def test_write_json_is_strict_json(tmp_path):
    """NaN and infinities are not JSON: they are written as null, numpy numbers as plain ones."""
    import json

    path = tmp_path / "fit.json"
    write_json(
        path,
        {
            "mu": float("nan"),
            "limit": np.float64(np.inf),
            "z": [1.0, -np.inf, np.float32(2.5)],
            "n": np.int64(3),
            "arr": np.array([np.nan, 1.0]),
        },
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    payload = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert payload == {"mu": None, "limit": None, "z": [1.0, None, 2.5], "n": 3, "arr": [None, 1.0]}


def test_write_root_gives_the_same_bytes_for_the_same_trees(tmp_path):
    """Reproducible outputs: no wall-clock time, random UUID or temporary name in the file."""
    import time

    trees = {
        "Events": {"x": np.arange(10.0), "j": ak.Array([[1.0], [], [2.0, 3.0]] * 3 + [[]])},
        "Runs": {"n": np.array([5])},
    }
    write_root(tmp_path / "a" / "out.root", trees)
    time.sleep(1.1)  # ROOT's time stamps have one-second resolution
    write_root(tmp_path / "b" / "out.root", trees)
    first = (tmp_path / "a" / "out.root").read_bytes()
    assert first == (tmp_path / "b" / "out.root").read_bytes()
    assert b".tmp" not in first
    with uproot.open(tmp_path / "a" / "out.root") as f:
        assert f["Events"]["j"].array().tolist()[:3] == [[1.0], [], [2.0, 3.0]] and f["Runs"][
            "n"
        ].array().tolist() == [5]
    write_root(tmp_path / "c" / "other.root", trees)
    assert (tmp_path / "c" / "other.root").read_bytes() != first  # another file: another UUID


KILLED_WRITER = """
import sys
sys.path.insert(0, {src!r})
from hzg import io
io.write_json({path!r}, {{"a": 1}})
"""


def test_a_writer_killed_before_the_rename_leaves_the_old_file_and_its_temp_goes_at_the_next_write(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "out.json"
    write_json(path, {"old": True})
    env = {**os.environ, "HZG_FAULT_AT": str(path)}
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(src=src, path=str(path))], env=env)
    assert proc.returncode == -9  # SIGKILL, with the new file complete but not yet in place
    assert path.read_text() == '{\n  "old": true\n}\n'
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1  # what SIGKILL leaves
    write_json(path, {"new": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # the next attempt clears it


def test_fault_injection_is_off_by_default_and_can_skip_and_fire_once(tmp_path, monkeypatch):
    from hzg import faults

    killed = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.delenv("HZG_FAULT_AT", raising=False)
    faults.before_replace(tmp_path / "x.root")
    assert killed == []
    monkeypatch.setenv("HZG_FAULT_AT", "y.root")
    monkeypatch.setenv("HZG_FAULT_SKIP", "1")
    monkeypatch.setenv("HZG_FAULT_ONCE", str(tmp_path))
    faults.before_replace(tmp_path / "x.root")
    faults.before_replace(tmp_path / "y.root")  # skipped
    assert killed == []
    faults.before_replace(tmp_path / "y.root")
    faults._seen.clear()
    faults.before_replace(tmp_path / "y.root")
    faults.before_replace(tmp_path / "y.root")  # once: the marker is there
    assert len(killed) == 1


JETS = [
    [(120.0, 1.0, 2.0, 10.0, 115.0), (40.0, -2.0, 0.5, 5.0, 45.0)],
    [],
    [(35.0, 3.0, -1.0, 4.0, 30.0)],
    [],
]


def _jets():
    return ak.zip(
        {k: _jagged(JETS, i, np.float64) for i, k in enumerate(("pt", "eta", "phi", "mass", "genPt"))}
    )


def test_jets_are_read_where_the_ntuple_has_them_and_left_out_where_not(tmp_path, nano_file):
    trees = nanoaod_trees({**objects_dict(), "Jet": _jets()}, ak.Array(WEIGHTS), RUNS, SPEC, chunk=3)
    write_root(tmp_path / "jets.root", trees)
    events = read_events(tmp_path / "jets.root", "nanoaod")
    assert ak.fields(events) == ["electron", "muon", "photon", "jet", "weight", "entry"]
    assert ak.fields(events.jet) == ["pt", "eta", "phi", "mass", "gen_pt"]
    assert events.jet.pt.to_list() == [[120.0, 40.0], [], [35.0], []]
    assert events.jet.mass.to_list() == [[10.0, 5.0], [], [4.0], []]
    # an n-tuple without jets (made before them, or a Delphes card without): no jet field, no error
    assert "jet" not in ak.fields(read_events(nano_file, "nanoaod"))
    # Delphes jets
    branches = delphes_branches()
    for key, i in (("PT", 0), ("Eta", 1), ("Phi", 2), ("Mass", 3)):
        branches[f"Jet.{key}"] = _jagged(JETS, i, np.float64)
    with uproot.recreate(tmp_path / "delphes_jets.root") as f:
        f.mktree("Delphes", branches)
    delphes = read_events(tmp_path / "delphes_jets.root", "delphes")
    assert delphes.jet.eta.to_list() == events.jet.eta.to_list()
    assert np.isnan(ak.to_numpy(ak.flatten(delphes.jet.gen_pt))).all()


@pytest.mark.parametrize("missing", ["Jet_genPt", "Jet_mass", "Jet_pt,Jet_eta"])
def test_a_jet_collection_without_truth_is_read_and_a_partial_one_is_refused(tmp_path, missing):
    """The jets' truth is optional as every collection's (gen_pt NaN); a jet collection that lacks one of
    its measured branches is a broken n-tuple, refused naming the file and the branches (it used to be left
    out without a word, and the object model then named its checkpoint instead)."""
    drop = tuple(missing.split(","))
    path = write_nanoaod(tmp_path / "partial.root", drop=drop, extra={"Jet": _jets()})
    if missing == "Jet_genPt":
        events = read_events(path, "nanoaod")
        assert events.jet.pt.to_list() == [[120.0, 40.0], [], [35.0], []]
        assert np.isnan(ak.to_numpy(ak.flatten(events.jet.gen_pt))).all()
    else:
        named = ", ".join(f"'{b}'" for b in drop)
        with pytest.raises(
            InputError,
            match=rf"partial\.root: tree 'Events' holds part of the jet collection "
            rf"but has no branch {named} \(have ",
        ):
            read_events(path, "nanoaod")


def test_read_parquet_frames_reads_only_the_columns_asked_that_a_file_has(tmp_path):
    import pandas as pd

    a = pd.DataFrame({"x": [1.0, 2.0], "y": [3, 4], "unused": ["p", "q"]})
    b = pd.DataFrame({"x": [5.0], "unused": ["r"]})  # no y: left for the caller's check
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    a.to_parquet(paths[0])
    b.to_parquet(paths[1])
    frame = io.read_parquet_frames(paths, ["x", "y", "x", "absent"])
    assert list(frame.columns) == ["x", "y"]
    np.testing.assert_array_equal(frame["x"], [1.0, 2.0, 5.0])
    assert frame["y"].isna().tolist() == [False, False, True]
    assert io.parquet_columns(paths[1]) == ["x", "unused"]


def test_parquet_columns_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.parquet does not exist"):
        io.parquet_columns(tmp_path / "gone.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but nothing after")
    with pytest.raises(ValueError, match="cannot read the Parquet file .*bad.parquet"):
        io.read_parquet_frames([bad], ["x"])
