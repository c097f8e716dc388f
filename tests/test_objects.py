"""The object stream (hzg.data.objects): skim columns (cleaning, ordering, padding), the feature block and
its normalisation."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hzg.data import objects
from hzg.data.selection import Cuts, preselect
from hzg.learn.classifier import Normaliser

LEPTON = {"pt": np.float64, "eta": np.float64, "phi": np.float64, "charge": np.int32, "gen_pt": np.float64}
PHOTON = {"pt": np.float64, "eta": np.float64, "phi": np.float64, "gen_pt": np.float64}
JET = {"pt": np.float64, "eta": np.float64, "phi": np.float64, "mass": np.float64, "gen_pt": np.float64}
CFG = {"n_extra_photons": 2, "n_jets": 3, "clean_dr": 0.4}


def _collection(per_event, dtypes):
    flat = [obj for objs in per_event for obj in objs]
    cols = {k: np.array([obj.get(k, obj["pt"]) for obj in flat], dtype=dt) for k, dt in dtypes.items()}
    return ak.unflatten(ak.zip(cols), np.array([len(objs) for objs in per_event], dtype=np.int64))


def _obj(pt, eta, phi, **extra):
    return {"pt": pt, "eta": eta, "phi": phi, **extra}


# a mu mu gamma candidate (m_ll = 90, m_llg ~ 125 GeV), as in tests/test_io.py
MUONS = [_obj(45.0, 0.0, np.pi, charge=+1), _obj(45.0, 0.0, 0.0, charge=-1)]
CANDIDATE_PHOTON = _obj(41.8, 0.0, np.pi / 2)


def _events(with_jets=True):
    photons = [
        [
            _obj(15.5, 1.0, 2.5),  # far from everything, third by pT: counted, not kept (2 slots)
            CANDIDATE_PHOTON,
            _obj(30.0, 0.1, 0.1),  # Delta R = 0.14 from the mu-: cleaned away
            _obj(16.0, 2.0, -1.0),
            _obj(20.0, -1.5, -2.0),
        ],
        [CANDIDATE_PHOTON],
    ]
    jets = [
        [
            _obj(35.0, 3.0, 1.0, mass=4.0),
            _obj(60.0, 0.05, np.pi / 2 + 0.1, mass=8.0),  # on the photon: cleaned away
            _obj(80.0, -1.0, -1.0, mass=10.0),
        ],
        [],
    ]
    fields = {
        "electron": _collection([[], []], LEPTON),
        "muon": _collection([MUONS, MUONS], LEPTON),
        "photon": _collection(photons, PHOTON),
    }
    if with_jets:
        fields["jet"] = _collection(jets, JET)
    fields["weight"] = np.ones(2)
    fields["entry"] = np.arange(2, dtype=np.int64)
    return ak.zip(fields, depth_limit=1)


def test_skim_objects_are_cleaned_ordered_and_padded_and_leave_the_candidate_columns_alone():
    plain, flow = preselect(_events(), Cuts())
    cols, flow_objects = preselect(_events(), Cuts(), objects_cfg=CFG)
    assert flow == flow_objects
    for key, value in plain.items():
        np.testing.assert_array_equal(cols[key], value)
    assert cols["n_extra_photons"].tolist() == [3, 0]
    assert cols["pho0_pt"].tolist() == [20.0, 0.0] and cols["pho1_pt"].tolist() == [16.0, 0.0]
    assert cols["pho1_eta"].tolist() == [2.0, 0.0]
    assert cols["n_jets"].tolist() == [2, 0]
    assert [cols[f"jet{k}_pt"][0] for k in range(3)] == [80.0, 35.0, 0.0]
    assert [cols[f"jet{k}_mass"][0] for k in range(3)] == [10.0, 4.0, 0.0]
    assert "pho2_pt" not in cols and "jet3_pt" not in cols
    # an n-tuple without jets: no jet columns
    no_jets, _ = preselect(_events(with_jets=False), Cuts(), objects_cfg=CFG)
    assert "n_jets" not in no_jets and not any(k.startswith("jet") for k in no_jets)
    np.testing.assert_array_equal(no_jets["pho0_pt"], cols["pho0_pt"])


def _reference_slots(objs, cand, clean_dr, n, fields, prefix):
    """The object block as awkward expresses it directly (the skim's code before it went flat): mask by
    Delta R, stable descending sort by pT, pad and clip to `n` slots."""
    keep = ak.ones_like(objs.pt, dtype=bool)
    for name in ("lm", "lp", "g"):
        dphi = (objs.phi - ak.Array(cand[f"{name}_phi"]) + np.pi) % (2 * np.pi) - np.pi
        with np.errstate(invalid="ignore"):
            keep = keep & (np.hypot(objs.eta - ak.Array(cand[f"{name}_eta"]), dphi) > clean_dr)
    kept = objs[keep]
    kept = kept[ak.argsort(kept.pt, axis=-1, ascending=False, stable=True)]
    padded = ak.pad_none(kept, n, axis=1, clip=True)
    out = {
        f"{prefix}{k}_{f}": ak.to_numpy(ak.fill_none(padded[f][:, k], 0.0)).astype(np.float64)
        for k in range(n)
        for f in fields
    }
    return out, ak.to_numpy(ak.num(kept)).astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_object_block_equals_the_awkward_expression_bit_for_bit(seed):
    """Random events: 0-9 objects each, pT ties (the order among equal pT is the n-tuple's), objects on the
    candidate (cleaned), phi across the +-pi seam, and a NaN candidate angle (no object passes it)."""
    rng = np.random.default_rng(seed)
    n_events = 400
    counts = rng.integers(0, 10, n_events)
    total = int(counts.sum())
    pt = rng.choice([20.0, 25.0, 30.0, 31.5], total).astype(np.float32)  # many ties
    eta = rng.uniform(-2.5, 2.5, total).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
    cand = {f"{n}_{v}": rng.uniform(-2.5, 2.5, n_events) for n in ("lm", "lp", "g") for v in ("eta", "phi")}
    cand["g_phi"][:5] = np.nan
    first = np.cumsum(counts) - counts
    on_photon = first[counts > 0][:50]
    eta[on_photon], phi[on_photon] = cand["g_eta"][counts > 0][:50] + 0.1, cand["g_phi"][counts > 0][:50]
    mass = rng.uniform(0, 20, total).astype(np.float32)
    objs = ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass}), counts)
    for n, fields in ((2, ("pt", "eta", "phi")), (3, ("pt", "eta", "phi", "mass")), (12, ("pt", "mass"))):
        got = objects._cleaned_slots(objs, cand, 0.4, n, fields, "x")
        want, n_kept = _reference_slots(objs, cand, 0.4, n, fields, "x")
        np.testing.assert_array_equal(got.pop("n_kept"), n_kept)
        assert list(got) == list(want)
        for key in want:
            assert got[key].dtype == want[key].dtype
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert (n_kept[:5] == 0).all()  # NaN candidate: nothing is farther than clean_dr from it


def test_feature_block_orders_types_and_pads():
    cols, _ = preselect(_events(), Cuts(), objects_cfg=CFG)
    block = objects.feature_block(cols, CFG)
    n = objects.n_objects(CFG)
    assert n == 8 and list(block) == objects.object_columns(n)
    types = np.array([block[objects.column(i, "type")] for i in range(n)]).T
    assert types.tolist() == [[2, 2, 3, 3, 3, 4, 4, 0], [2, 2, 3, 0, 0, 0, 0, 0]]
    assert block["obj2_phi"].tolist() == [0.0, 0.0]  # phi relative to the candidate photon's
    assert block["obj0_phi"][0] == pytest.approx(np.pi / 2) or block["obj0_phi"][0] == pytest.approx(
        -np.pi / 2
    )
    assert block["obj5_pt"][0] == 80.0
    assert block["obj5_e"][0] == pytest.approx(np.sqrt((80.0 * np.cosh(-1.0)) ** 2 + 100.0))
    assert block["obj5_phi"][0] == pytest.approx(-1.0 - np.pi / 2)
    for i in range(3, n):  # padding: every property 0
        for p in objects.PROPERTIES:
            assert block[objects.column(i, p)][1] == 0.0
    # without jets in the skim: no jet slots
    no_jets, _ = preselect(_events(with_jets=False), Cuts(), objects_cfg=CFG)
    assert list(objects.feature_block(no_jets, CFG)) == objects.object_columns(5)
    with pytest.raises(KeyError, match="Jet collection"):
        objects.check_object_columns(objects.object_columns(5), n, "features")


def test_object_columns_layout_is_checked():
    cols = ["a", "b"] + objects.object_columns(2)
    assert objects.count_objects(cols) == 2 and objects.count_objects(["a"]) == 0
    with pytest.raises(ValueError, match="last ones"):
        objects.count_objects(objects.object_columns(2) + ["a"])


def test_normaliser_keeps_type_codes_and_ignores_padding():
    rng = np.random.default_rng(1)
    columns = ["f"] + objects.object_columns(2)
    x = np.zeros((1000, len(columns)), np.float32)
    x[:, 0] = rng.normal(5, 2, 1000)
    x[:, 1:5] = rng.normal(50, 10, (1000, 4))
    x[:, 5] = 3
    real = rng.random(1000) < 0.3  # slot 1: a jet in 30 % of events, else padding (zeros)
    x[real, 6:10] = rng.normal(100, 20, (real.sum(), 4))
    x[real, 10] = 4
    norm = Normaliser.fit(x, columns)
    out = norm(x)
    assert np.array_equal(out[:, 5], x[:, 5]) and np.array_equal(out[:, 10], x[:, 10])
    assert abs(out[real, 6].mean()) < 1e-4 and out[real, 6].std() == pytest.approx(1.0, rel=1e-3)
    assert out[:, 0].std() == pytest.approx(1.0, rel=1e-3)
    # no object columns: the plain standardisation
    plain = Normaliser.fit(x[:, :1], ["f"])
    np.testing.assert_allclose(plain.mean, Normaliser.fit(x[:, :1]).mean)
