"""Tests for hzg.data.kinematics with hand-constructed events.

The production/decay angles and sigma_m are checked against the code of the paper's authors:
jaebak/llg_angles llg_angles.hpp (llg::get_q1, get_q2, get_lambdaZ, get_cosTheta, get_costheta,
get_phi) and the llg_m_resolution block of jaebak/process_mc src/process_delphes.cxx.  The
references below redo each step of that code for one event at a time with plain numpy (4x4
Lorentz matrices, no library code), and hand-built events give the expected angles directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from hzg.data.kinematics import (
    beam_partons,
    delta_phi,
    delta_r,
    four_momenta,
    mass_log_derivatives,
    mass_resolution,
    production_decay_angles,
    pt_t,
)

M_H, M_Z = 125.0, 91.1876


# ---------------------------------------------------------------- helpers
def _p4(pt: float, eta: float, phi: float) -> np.ndarray:
    """[E, px, py, pz] of one massless object (TLorentzVector::SetPtEtaPhiM(pt, eta, phi, 0))."""
    return np.array([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])


def _ptetaphi(p4: np.ndarray) -> tuple[float, float, float]:
    """(pt, eta, phi) of one massless four-momentum."""
    pt = float(np.hypot(p4[1], p4[2]))
    return pt, float(np.arcsinh(p4[3] / pt)), float(np.arctan2(p4[2], p4[1]))


def _event(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 9 (pt, eta, phi) arrays (length 1) of an event given as three four-momenta."""
    return tuple(np.array([x]) for v in (lm, lp, g) for x in _ptetaphi(v))


def _lorentz_matrix(beta: np.ndarray) -> np.ndarray:
    """4x4 matrix of TLorentzVector::Boost(beta): E' = g(E + b.p), p' = p + ((g-1) b.p / b^2 + g E) b."""
    b2 = float(beta @ beta)
    g = 1.0 / np.sqrt(1.0 - b2)
    lam = np.eye(4)
    lam[0, 0] = g
    lam[0, 1:] = lam[1:, 0] = g * beta
    if b2 > 0:
        lam[1:, 1:] += (g - 1.0) * np.outer(beta, beta) / b2
    return lam


def _mdot(a: np.ndarray, b: np.ndarray) -> float:
    """Minkowski product a.b (TLorentzVector::Dot)."""
    return float(a[0] * b[0] - a[1:] @ b[1:])


def _mass(p: np.ndarray) -> float:
    return float(np.sqrt(_mdot(p, p)))


# ---------------------------------------------------------------- the authors' code, step by step
def ref_q1_q2(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """llg::get_q1 and llg::get_q2."""
    llg = lm + lp + g
    htran = llg[1:] / llg[0]  # TVector3 htran = llg_p4.BoostVector();
    htran[2] = 0.0  # htran.SetZ(0);
    h = _lorentz_matrix(-htran) @ llg  # llg_p4.Boost(-1*htran);
    k1 = np.array([(h[0] + h[3]) / 2, 0, 0, (h[3] + h[0]) / 2])  # k1.SetPxPyPzE(0,0,pz/2,E/2), pz = Pz+E
    k2 = np.array([(h[0] - h[3]) / 2, 0, 0, (h[3] - h[0]) / 2])  # k2: pz = Pz-E, E = E-Pz
    return _lorentz_matrix(htran) @ k1, _lorentz_matrix(htran) @ k2  # k.Boost(htran);


def ref_lambda_z(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> float:
    """llg::get_lambdaZ: sqrt(pow(llg.Dot(ll)/llg.M(), 2) - pow(ll.M(), 2))."""
    ll, llg = lm + lp, lm + lp + g
    return float(np.sqrt((_mdot(llg, ll) / _mass(llg)) ** 2 - _mass(ll) ** 2))


def ref_cos_big_theta(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> float:
    """llg::get_cosTheta: ll.(q2 - q1) / (llg.M() lambdaZ)."""
    q1, q2 = ref_q1_q2(lm, lp, g)
    return _mdot(lm + lp, q2 - q1) / (_mass(lm + lp + g) * ref_lambda_z(lm, lp, g))


def ref_cos_small_theta(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> float:
    """llg::get_costheta: llg.(lep_plus - lep_minus) / (llg.M() lambdaZ), then the +-0.999 clamp."""
    c = _mdot(lm + lp + g, lp - lm) / (_mass(lm + lp + g) * ref_lambda_z(lm, lp, g))
    return 0.999 if c > 1 else (-0.999 if c < -1 else c)


def ref_phi(lm: np.ndarray, lp: np.ndarray, g: np.ndarray) -> float:
    """llg::get_phi."""
    llg = lm + lp + g
    to_h = _lorentz_matrix(-llg[1:] / llg[0])  # Boost(-1*llgBoost)
    q1 = ref_q1_q2(lm, lp, g)[0]
    l1, l2, q, z = ((to_h @ v)[1:] for v in (lm, lp, q1, lm + lp))
    sin_big = np.sqrt(1 - ref_cos_big_theta(lm, lp, g) ** 2)
    n = np.cross(l1, l2)
    cosphi = -n @ np.cross(q, z) / np.linalg.norm(n) / np.linalg.norm(np.cross(q, z))
    sinphi = -n @ q / np.linalg.norm(n) / np.linalg.norm(q) / sin_big
    cosphi = min(max(cosphi, -1.0), 1.0)
    phi = -np.arccos(cosphi) if sinphi < 0 else np.arccos(cosphi)
    return float(phi + 2 * np.pi if phi < 0 else phi)


def ref_sigma_m(lm: np.ndarray, lp: np.ndarray, g: np.ndarray, r: tuple[float, float, float]) -> float:
    """llg_m_resolution of process_delphes.cxx: pT of each object raised by its resolution in turn."""
    nominal = _mass(lm + lp + g)
    dm = [
        _mass(lm * (1 + r[0]) + lp + g) - nominal,  # pT -> pT + sigma_pT at fixed eta, phi (massless)
        _mass(lm + lp * (1 + r[1]) + g) - nominal,
        _mass(lm + lp + g * (1 + r[2])) - nominal,
    ]
    return float(np.sqrt(sum(d * d for d in dm)))


def h_frame_event(big_theta: float, theta: float, phi: float, beta_z: float = 0.0) -> tuple[np.ndarray, ...]:
    """lm, lp, g of an H -> Z gamma decay with known angles, H moving along z with beta_z.

    In the H rest frame the +z parton is along +z (no transverse recoil): Z along
    e1 = (sin T, 0, cos T), photon along -e1; e2 = the component of +z orthogonal to e1,
    e3 = e1 x e2.  In the Z rest frame lp is along cos(t) e1 + sin(t) (cos(f) e2 + sin(f) e3):
    its transverse part is e2 (the parton's) rotated right-handedly about e1 by f.
    """
    e1 = np.array([np.sin(big_theta), 0.0, np.cos(big_theta)])
    e2 = np.array([-np.cos(big_theta), 0.0, np.sin(big_theta)])
    e3 = np.cross(e1, e2)
    d = np.cos(theta) * e1 + np.sin(theta) * (np.cos(phi) * e2 + np.sin(phi) * e3)
    lp = np.concatenate([[M_Z / 2], M_Z / 2 * d])
    lm = np.concatenate([[M_Z / 2], -M_Z / 2 * d])
    p = (M_H**2 - M_Z**2) / (2 * M_H)
    to_h = _lorentz_matrix(p / np.hypot(p, M_Z) * e1)
    g = np.concatenate([[p], -p * e1])
    to_lab = _lorentz_matrix(np.array([0.0, 0.0, beta_z]))
    return to_lab @ to_h @ lm, to_lab @ to_h @ lp, to_lab @ g


def _random_event(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(
        _p4(rng.uniform(10, 80), rng.uniform(-2.4, 2.4), rng.uniform(-np.pi, np.pi)) for _ in range(3)
    )


# ---------------------------------------------------------------- delta phi / R
def test_delta_phi_wraps_around():
    # phi1 - phi2 = 6.0 -> 6.0 - 2 pi = -0.2832 (phi1 is "behind" phi2 across the -pi/pi seam)
    np.testing.assert_allclose(delta_phi(np.array([3.0]), np.array([-3.0])), [6.0 - 2 * np.pi])
    np.testing.assert_allclose(delta_phi(np.array([-3.0]), np.array([3.0])), [2 * np.pi - 6.0])
    np.testing.assert_allclose(delta_phi(np.array([0.5, 0.0]), np.array([0.2, 0.0])), [0.3, 0.0], atol=1e-15)


def test_delta_phi_range_half_open():
    d = delta_phi(np.array([np.pi, 0.0, 1e-17]), np.array([0.0, np.pi, 0.0]))
    assert np.all(d >= -np.pi) and np.all(d < np.pi)
    np.testing.assert_allclose(d[:2], [-np.pi, -np.pi])


def test_delta_r_known_pair():
    dr = delta_r(np.array([0.5]), np.array([3.0]), np.array([-0.5]), np.array([-3.0]))
    np.testing.assert_allclose(dr, [np.sqrt(1.0 + (2 * np.pi - 6.0) ** 2)])
    np.testing.assert_allclose(dr, [1.0393238], rtol=1e-6)


def test_four_momenta_massless():
    v = four_momenta(np.array([10.0, 20.0]), np.array([0.0, 1.0]), np.array([0.0, 0.5]))
    np.testing.assert_allclose(v.E, [10.0, 20.0 * np.cosh(1.0)])
    np.testing.assert_allclose(v.mass, [0.0, 0.0], atol=1e-9)


# ---------------------------------------------------------------- pTt
def test_pt_t_back_to_back_is_zero():
    # Z pT = (50, 0) from two leptons, photon pT = (-30, 0): llg pT along the thrust axis.
    one = np.ones(1)
    lm = (50 / np.sqrt(2) * one, 0.3 * one, np.pi / 4 * one)
    lp = (50 / np.sqrt(2) * one, -1.1 * one, -np.pi / 4 * one)
    g = (30 * one, 0.7 * one, np.pi * one)
    np.testing.assert_allclose(pt_t(*lm, *lp, *g), [0.0], atol=1e-12)


def test_pt_t_hand_computed():
    # pT(Z) = (30, 30), pT(g) = (-40, 0): llg = (-10, 30), t = (70, 30)/sqrt(5800)
    # pTt = |-10*30 - 30*70| / sqrt(5800) = 2400 / sqrt(5800) = 31.5135
    one = np.ones(1)
    val = pt_t(
        30 * one, 0.1 * one, 0 * one, 30 * one, -0.4 * one, np.pi / 2 * one, 40 * one, 1.2 * one, np.pi * one
    )
    np.testing.assert_allclose(val, [2400 / np.sqrt(5800)])
    np.testing.assert_allclose(val, [31.5135], rtol=1e-5)
    # invariant under a global azimuthal rotation
    rot = pt_t(
        30 * one,
        0.1 * one,
        1.0 * one,
        30 * one,
        -0.4 * one,
        (np.pi / 2 + 1.0) * one,
        40 * one,
        1.2 * one,
        (np.pi + 1.0) * one,
    )
    np.testing.assert_allclose(rot, val)


# ---------------------------------------------------------------- angles: hand-computed events
def test_hand_event_h_at_rest_z_along_x():
    """H at rest, Z along +x, photon along -x; in the Z frame lp along +y.

    q1 = (M/2)(1, 0, 0, 1) (H at rest: no boost), so cos Theta = z_hat.x_hat = 0.
    In the Z frame lp = (mZ/2)(1, 0, 1, 0): cos theta = lp_hat.Z_hat = 0.
    get_phi: l1 = lm* = (a, -b, 0), l2 = lp* = (a, b, 0) with a = p_Z/2, b = mZ/2;
    l1 x l2 = (0, 0, 2ab); q1 x Z = (0, 0, M/2) x (2a, 0, 0) = (0, aM, 0);
    cos phi = -(0, 0, 1).(0, 1, 0) = 0, sin phi = -(0, 0, 1).(0, 0, 1) / sinTheta = -1
    -> phi = -acos(0) = -pi/2 -> + 2 pi = 3 pi / 2.
    """
    p = (M_H**2 - M_Z**2) / (2 * M_H)
    gamma = np.hypot(p, M_Z) / M_Z
    a, b = gamma * (p / np.hypot(p, M_Z)) * M_Z / 2, M_Z / 2
    lm = np.array([gamma * M_Z / 2, a, -b, 0.0])
    lp = np.array([gamma * M_Z / 2, a, b, 0.0])
    g = np.array([p, -p, 0.0, 0.0])
    # pt, eta, phi of objects with pz = 0 (eta = 0); the photon at phi = pi
    ev = (
        np.array([np.hypot(a, b)]),
        np.zeros(1),
        np.array([np.arctan2(-b, a)]),
        np.array([np.hypot(a, b)]),
        np.zeros(1),
        np.array([np.arctan2(b, a)]),
        np.array([p]),
        np.zeros(1),
        np.array([np.pi]),
    )
    np.testing.assert_allclose(
        ev[0] * 2 * np.cos(ev[2]) + ev[6] * np.cos(ev[8]), 0.0, atol=1e-12
    )  # pT(llg) = 0
    cT, ct, ph = production_decay_angles(*ev)
    np.testing.assert_allclose(cT, [0.0], atol=1e-12)
    np.testing.assert_allclose(ct, [0.0], atol=1e-12)
    np.testing.assert_allclose(ph, [1.5 * np.pi], atol=1e-12)
    np.testing.assert_allclose(
        [ref_cos_big_theta(lm, lp, g), ref_cos_small_theta(lm, lp, g), ref_phi(lm, lp, g)],
        [0.0, 0.0, 1.5 * np.pi],
        atol=1e-12,
    )


def test_hand_event_positive_lepton_defines_cos_theta():
    """H at rest, Z along +x; in the Z frame lp = (mZ/2)(1, cos t, sin t, 0) with cos t = 0.6.

    get_costheta = llg.(lp - lm)/(M lambdaZ) = M (E_lp - E_lm)/(M p_Z): with the Z boost along x,
    E_lp - E_lm = 2 gamma beta (mZ/2) cos t = p_Z cos t  ->  +0.6 (the positive lepton; the
    negative lepton would give -0.6).  Swapping the charges flips the sign.
    """
    p = (M_H**2 - M_Z**2) / (2 * M_H)
    gamma, gb = np.hypot(p, M_Z) / M_Z, p / M_Z
    c, s = 0.6, 0.8
    lp = np.array([gamma * M_Z / 2 + gb * M_Z / 2 * c, gb * M_Z / 2 + gamma * M_Z / 2 * c, M_Z / 2 * s, 0.0])
    lm = np.array([gamma * M_Z / 2 - gb * M_Z / 2 * c, gb * M_Z / 2 - gamma * M_Z / 2 * c, -M_Z / 2 * s, 0.0])
    g = np.array([p, -p, 0.0, 0.0])
    np.testing.assert_allclose(lm + lp + g, [M_H, 0, 0, 0], atol=1e-12)
    e_diff, p_z = lp[0] - lm[0], p
    np.testing.assert_allclose(e_diff / p_z, 0.6, rtol=1e-12)  # the hand formula
    _, ct, ph = production_decay_angles(*_event(lm, lp, g))
    np.testing.assert_allclose(ct, [0.6], rtol=1e-12)
    np.testing.assert_allclose(ph, [1.5 * np.pi], atol=1e-12)  # lp's transverse part still along +y
    _, ct_swapped, ph_swapped = production_decay_angles(*_event(lp, lm, g))
    np.testing.assert_allclose(ct_swapped, [-0.6], rtol=1e-12)
    np.testing.assert_allclose(ph_swapped, [0.5 * np.pi], atol=1e-12)


@pytest.mark.parametrize("beta_z", [0.0, 0.35, -0.6])
def test_angles_of_constructed_events(beta_z):
    """Events built from (Theta, theta, phi) in the H frame; longitudinal boosts keep q1* along +z.

    cos Theta: Z* against q1* = +z, the same for H moving along +z or -z (q1 is always the +z parton).
    cos theta: of lp in the Z frame.  phi: right-handed about Z* from q1*'s to lp's transverse part.
    """
    cases = [(0.3, 2.2, 1.2), (1.0, 0.6, 2.6), (2.0, 1.5, 4.0), (2.9, 0.9, 5.9), (np.pi / 2, 1.1, 0.2)]
    for big_theta, theta, phi in cases:
        lm, lp, g = h_frame_event(big_theta, theta, phi, beta_z)
        cT, ct, ph = production_decay_angles(*_event(lm, lp, g))
        np.testing.assert_allclose(cT, [np.cos(big_theta)], atol=1e-9)
        np.testing.assert_allclose(ct, [np.cos(theta)], atol=1e-9)
        np.testing.assert_allclose(ph, [phi], atol=1e-8)
        np.testing.assert_allclose(
            [ref_cos_big_theta(lm, lp, g), ref_cos_small_theta(lm, lp, g), ref_phi(lm, lp, g)],
            [np.cos(big_theta), np.cos(theta), phi],
            atol=1e-8,
        )


def test_quark_axis_with_transverse_recoil():
    """get_q1 for an llg with pT: built in the frame where pT = 0, then boosted back (not the lab +z).

    By hand: the transverse boost keeps pz and gives E' = sqrt(E^2 - pT^2); q1' = ((E' + pz)/2)(1, 0, 0, 1);
    boosting back with beta_T = pT/E (gamma = E/E') gives q1 = (E' + pz)/(2 E') (E, px, py, E'),
    and q2 = (E' - pz)/(2 E') (E, px, py, -E').
    """
    lm, lp, g = _p4(38.0, 0.4, 0.3), _p4(27.0, -0.9, 2.1), _p4(41.0, 1.3, -1.7)
    llg = lm + lp + g
    e, px, py, pz = llg
    e_t = np.sqrt(e**2 - px**2 - py**2)
    q1_hand = (e_t + pz) / (2 * e_t) * np.array([e, px, py, e_t])
    q2_hand = (e_t - pz) / (2 * e_t) * np.array([e, px, py, -e_t])
    q1, q2 = beam_partons(llg[None, :])
    np.testing.assert_allclose(q1[0], q1_hand, rtol=1e-12)
    np.testing.assert_allclose(q2[0], q2_hand, rtol=1e-12)
    np.testing.assert_allclose(q1[0], ref_q1_q2(lm, lp, g)[0], rtol=1e-12)
    assert abs(q1_hand[1]) > 1.0  # the parton carries transverse momentum: not the lab z axis
    # cos Theta = ll.(q2 - q1) / (M lambdaZ), lambdaZ = sqrt((llg.ll / M)^2 - m_ll^2)
    ll = lm + lp
    m = _mass(llg)
    lam = np.sqrt((_mdot(llg, ll) / m) ** 2 - _mdot(ll, ll))
    expected = _mdot(ll, q2_hand - q1_hand) / (m * lam)
    cT, _, _ = production_decay_angles(*_event(lm, lp, g))
    np.testing.assert_allclose(cT, [expected], rtol=1e-10)
    # the same number as the angle between Z and q1 in the llg rest frame
    to_h = _lorentz_matrix(-llg[1:] / llg[0])
    z_h, q_h = (to_h @ ll)[1:], (to_h @ q1_hand)[1:]
    np.testing.assert_allclose(cT, [z_h @ q_h / np.linalg.norm(z_h) / np.linalg.norm(q_h)], rtol=1e-10)


def test_angles_match_the_authors_code_on_random_events():
    rng = np.random.default_rng(7)
    events = [_random_event(rng) for _ in range(50)]
    cols = [np.concatenate(c) for c in zip(*(_event(*ev) for ev in events))]
    cT, ct, ph = production_decay_angles(*cols)
    np.testing.assert_allclose(cT, [ref_cos_big_theta(*ev) for ev in events], atol=1e-10)
    np.testing.assert_allclose(ct, [ref_cos_small_theta(*ev) for ev in events], atol=1e-10)
    np.testing.assert_allclose(ph, [ref_phi(*ev) for ev in events], atol=1e-9)
    assert np.all((ph >= 0) & (ph < 2 * np.pi))
    assert np.all(np.abs(cT) <= 1 + 1e-12) and np.all(np.abs(ct) <= 1)
    assert ph.min() < 1.0 and ph.max() > 5.0  # the whole [0, 2 pi) range is used, not [-pi, pi]


def test_phi_is_shifted_by_pi_when_the_charges_are_swapped():
    lm, lp, g = h_frame_event(1.2, 0.7, 0.5, beta_z=0.2)
    _, ct, ph = production_decay_angles(*_event(lm, lp, g))
    _, ct2, ph2 = production_decay_angles(*_event(lp, lm, g))
    np.testing.assert_allclose(ct2, -ct, atol=1e-12)
    np.testing.assert_allclose(ph2, ph + np.pi, atol=1e-9)


# ---------------------------------------------------------------- mass resolution
def test_mass_resolution_symmetric_event_by_hand():
    """Three pT = 10 GeV objects at eta = 0, 120 degrees apart.

    Each pair: m_ij^2 = 2 * 10 * 10 * (1 - cos 120) = 300, m^2 = 900, m = 30 GeV.  Raising object i's
    pT by r_i scales its four-momentum: m'^2 = m_jk^2 + (1 + r_i)(m^2 - m_jk^2) = 300 + 600 (1 + r_i).
    r = (0.1, 0.1, 0.2): dm = sqrt(960) - 30, sqrt(960) - 30, sqrt(1020) - 30.
    """
    one = np.ones(1)
    ev = (
        10 * one,
        0 * one,
        0 * one,
        10 * one,
        0 * one,
        2 * np.pi / 3 * one,
        10 * one,
        0 * one,
        -2 * np.pi / 3 * one,
    )
    sigma = mass_resolution(*ev, 0.1 * one, 0.1 * one, 0.2 * one)
    expected = np.sqrt(2 * (np.sqrt(960.0) - 30.0) ** 2 + (np.sqrt(1020.0) - 30.0) ** 2)
    np.testing.assert_allclose(sigma, [expected], rtol=1e-12)
    np.testing.assert_allclose(sigma, [2.3853], rtol=1e-4)  # GeV: sqrt(2 * 0.98387^2 + 1.93744^2)


def test_mass_resolution_matches_the_authors_code_and_linearisation():
    rng = np.random.default_rng(3)
    events = [_random_event(rng) for _ in range(20)]
    r = rng.uniform(0.005, 0.05, (20, 3))
    cols = [np.concatenate(c) for c in zip(*(_event(*ev) for ev in events))]
    sigma = mass_resolution(*cols, r[:, 0], r[:, 1], r[:, 2])
    np.testing.assert_allclose(sigma, [ref_sigma_m(*ev, tuple(ri)) for ev, ri in zip(events, r)], rtol=1e-9)
    # small shifts: dm_i ~ m d(ln m)/d(ln p_i) r_i
    m = np.array([_mass(sum(ev)) for ev in events])
    d = mass_log_derivatives(*cols)
    linear = m * np.sqrt(sum((di * ri) ** 2 for di, ri in zip(d, r.T)))
    np.testing.assert_allclose(sigma, linear, rtol=0.03)


def test_mass_log_derivatives_symmetric_event():
    # three equal-pT objects at eta = 0, 120 degrees apart: all pair masses equal -> 1/3 each
    one = np.ones(1)
    d = mass_log_derivatives(
        10 * one,
        0 * one,
        0 * one,
        10 * one,
        0 * one,
        2 * np.pi / 3 * one,
        10 * one,
        0 * one,
        -2 * np.pi / 3 * one,
    )
    np.testing.assert_allclose(np.concatenate(d), [1 / 3] * 3)


def test_the_modules_of_jobs_that_read_features_do_not_import_vector():
    """vector imports sympy (0.3-0.5 s a process): kinematics imports it where it builds four-momenta, so the
    training, evaluation, fit and plot jobs, which import hzg.data.features for its names and checks, start
    without it (a fresh interpreter, as a Snakemake job)."""
    import subprocess
    import sys

    modules = [
        "hzg.learn.training",
        "hzg.learn.classifier",
        "hzg.results.evaluation",
        "hzg.results.plotting",
        "hzg.results.interpret",
        "hzg.results.fit.templates",
        "hzg.results.fit.plots",
    ]
    imports = "".join(f"import {m}\n" for m in modules)
    code = f"import sys\n{imports}print('vector' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    p = four_momenta([30.0], [0.5], [1.0], [0.1])  # imports vector where it is needed
    assert float(p.pt[0]) == pytest.approx(30.0)
