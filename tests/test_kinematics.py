"""Tests for hzg.kinematics with hand-constructed events."""

from __future__ import annotations

import numpy as np
import pytest

from hzg.kinematics import (
    delta_phi,
    delta_r,
    four_momenta,
    mass_log_derivatives,
    production_decay_angles,
    pt_t,
    relative_mass_resolution,
)

M_H, M_Z = 125.0, 91.1876


# ---------------------------------------------------------------- helpers
def _boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost (n,4) [E,px,py,pz] from a frame moving with velocity beta (n,3) into the lab."""
    beta = np.broadcast_to(beta, p4[:, 1:].shape)
    b2 = np.sum(beta**2, axis=1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p4[:, 1:], axis=1)
    k = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    e = gamma * (p4[:, 0] + bp)
    p = p4[:, 1:] + (k * bp + gamma * p4[:, 0])[:, None] * beta
    return np.column_stack([e, p])


def _ptetaphi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pt, eta, phi) of (n,4) massless momenta."""
    pt = np.hypot(p4[:, 1], p4[:, 2])
    return pt, np.arcsinh(p4[:, 3] / pt), np.arctan2(p4[:, 2], p4[:, 1])


def make_event(big_theta0, theta0, phi0, beta_z=0.3, rot=0.0, m_h=M_H, m_z=M_Z):
    """Build lm, lp, g in the lab from H-frame angles (beam = +z), return 9 arrays.

    In the H frame: Z along e1 = (sin T, 0, cos T), photon along -e1.
    e2 = unit component of +z orthogonal to e1, e3 = e1 x e2.
    In the Z frame: lm along cos(t) e1 + sin(t) (cos(f) e2 + sin(f) e3), i.e. its
    transverse part is e2 rotated right-handedly about e1 by f.  Then the
    whole system is rotated by `rot` about z and boosted along z with beta_z.
    """
    T, t, f = (np.atleast_1d(np.asarray(a, dtype=float)) for a in np.broadcast_arrays(big_theta0, theta0, phi0))
    n = T.size
    e1 = np.column_stack([np.sin(T), np.zeros(n), np.cos(T)])
    e2 = np.column_stack([-np.cos(T), np.zeros(n), np.sin(T)])
    e3 = np.cross(e1, e2)
    d = np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * (np.cos(f)[:, None] * e2 + np.sin(f)[:, None] * e3)
    half = 0.5 * m_z
    lm = np.column_stack([np.full(n, half), half * d])
    lp = np.column_stack([np.full(n, half), -half * d])
    p = (m_h**2 - m_z**2) / (2 * m_h)
    beta_zb = (p / np.hypot(p, m_z)) * e1
    lm, lp = _boost(lm, beta_zb), _boost(lp, beta_zb)
    g = np.column_stack([np.full(n, p), -p * e1])
    c, s = np.cos(rot), np.sin(rot)
    out = []
    for v in (lm, lp, g):
        v = np.column_stack([v[:, 0], c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2], v[:, 3]])
        out.extend(_ptetaphi(_boost(v, np.array([0.0, 0.0, beta_z]))))
    return tuple(out)


def _mass(lm_pt, lm_eta, lm_phi, lp_pt, lp_eta, lp_phi, g_pt, g_eta, g_phi):
    """Independent invariant mass of three massless objects."""
    tot = np.zeros((np.size(lm_pt), 4))
    for pt, eta, phi in ((lm_pt, lm_eta, lm_phi), (lp_pt, lp_eta, lp_phi), (g_pt, g_eta, g_phi)):
        tot += np.column_stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
    return np.sqrt(tot[:, 0] ** 2 - np.sum(tot[:, 1:] ** 2, axis=1))


def _swap(ev):
    """Swap lm and lp in a 9-tuple event."""
    return ev[3:6] + ev[0:3] + ev[6:9]


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
    val = pt_t(30 * one, 0.1 * one, 0 * one, 30 * one, -0.4 * one, np.pi / 2 * one, 40 * one, 1.2 * one, np.pi * one)
    np.testing.assert_allclose(val, [2400 / np.sqrt(5800)])
    np.testing.assert_allclose(val, [31.5135], rtol=1e-5)
    # invariant under a global azimuthal rotation
    rot = pt_t(30 * one, 0.1 * one, 1.0 * one, 30 * one, -0.4 * one, (np.pi / 2 + 1.0) * one,
               40 * one, 1.2 * one, (np.pi + 1.0) * one)
    np.testing.assert_allclose(rot, val)


# ---------------------------------------------------------------- angles
@pytest.mark.parametrize("rot", [0.0, 1.3])
@pytest.mark.parametrize("beta_z", [0.0, 0.3, 0.9])
def test_angles_z_perpendicular_to_beam(beta_z, rot):
    theta0 = np.array([0.4, 1.1, 2.5, 2.0])
    phi0 = np.array([0.7, -2.1, 3.0, -0.3])
    ev = make_event(np.pi / 2, theta0, phi0, beta_z=beta_z, rot=rot)
    cT, ct, ph = production_decay_angles(*ev)
    np.testing.assert_allclose(cT, 0.0, atol=1e-9)
    np.testing.assert_allclose(ct, np.cos(theta0), atol=1e-9)
    if beta_z > 0:  # at rest the llg pz sign is rounding noise, so phi's quark side is ill-defined
        np.testing.assert_allclose(ph, phi0, atol=1e-8)


@pytest.mark.parametrize("beta_z", [0.25, 0.8])
def test_angles_generic_production_angle(beta_z):
    big_theta0 = np.array([0.3, 1.0, 2.0, 2.9])
    theta0 = np.array([2.2, 0.6, 1.5, 0.9])
    phi0 = np.array([-1.2, 2.6, 0.4, -3.0])
    ev = make_event(big_theta0, theta0, phi0, beta_z=beta_z, rot=-0.8)
    cT, ct, ph = production_decay_angles(*ev)
    np.testing.assert_allclose(cT, np.cos(big_theta0), atol=1e-9)
    np.testing.assert_allclose(ct, np.cos(theta0), atol=1e-9)
    np.testing.assert_allclose(ph, phi0, atol=1e-8)


def test_angles_sign_of_phi_is_right_handed_about_z():
    # Z along +x, beam +z: lm transverse part along -y (rotation of +z by +pi/2 about +x) -> phi = +pi/2
    ev = make_event(np.pi / 2, 1.0, np.pi / 2, beta_z=0.4)
    _, _, ph = production_decay_angles(*ev)
    np.testing.assert_allclose(ph, [np.pi / 2], atol=1e-9)
    # direct check of the constructed lm direction in the lab (phi = atan2(py, px) < 0 -> py < 0)
    assert ev[2][0] < 0


def test_angles_quark_follows_boost_direction():
    big_theta0, theta0, phi0 = np.array([0.7, 2.3]), np.array([1.2, 0.5]), np.array([0.9, -2.4])
    cT, ct, ph = production_decay_angles(*make_event(big_theta0, theta0, phi0, beta_z=-0.5))
    # quark now along -z: cos_Theta flips, the production plane normal flips -> phi shifts by pi
    np.testing.assert_allclose(cT, -np.cos(big_theta0), atol=1e-9)
    np.testing.assert_allclose(ct, np.cos(theta0), atol=1e-9)
    np.testing.assert_allclose(delta_phi(ph, phi0 + np.pi), 0.0, atol=1e-8)


def test_angles_invariant_under_longitudinal_boost():
    args = (np.array([0.5, 1.7]), np.array([0.8, 2.4]), np.array([1.9, -0.6]))
    ref = production_decay_angles(*make_event(*args, beta_z=0.1))
    for bz in (0.5, 0.95):
        for a, b in zip(production_decay_angles(*make_event(*args, beta_z=bz)), ref):
            np.testing.assert_allclose(a, b, atol=1e-8)


def test_swapping_leptons_flips_cos_theta():
    ev = make_event(np.array([0.9, 1.6]), np.array([0.4, 2.0]), np.array([1.0, -2.5]), beta_z=0.3)
    cT, ct, ph = production_decay_angles(*ev)
    cT2, ct2, ph2 = production_decay_angles(*_swap(ev))
    np.testing.assert_allclose(cT2, cT, atol=1e-9)
    np.testing.assert_allclose(ct2, -ct, atol=1e-9)
    np.testing.assert_allclose(delta_phi(ph2, ph + np.pi), 0.0, atol=1e-8)


def test_angles_with_transverse_recoil_are_finite_and_in_range():
    rng = np.random.default_rng(1)
    n = 200
    ev = tuple(
        x for _ in range(3) for x in (rng.uniform(10, 80, n), rng.uniform(-2.4, 2.4, n), rng.uniform(-np.pi, np.pi, n))
    )
    cT, ct, ph = production_decay_angles(*ev)
    for c in (cT, ct):
        assert np.all(np.isfinite(c)) and np.all(np.abs(c) <= 1.0)
    assert np.all(np.isfinite(ph)) and np.all(np.abs(ph) <= np.pi)


# ---------------------------------------------------------------- mass resolution
def test_mass_log_derivatives_symmetric_event():
    # three equal-pT objects at eta = 0, 120 degrees apart: all pair masses equal -> 1/3 each
    one = np.ones(1)
    d = mass_log_derivatives(10 * one, 0 * one, 0 * one, 10 * one, 0 * one, 2 * np.pi / 3 * one,
                             10 * one, 0 * one, -2 * np.pi / 3 * one)
    np.testing.assert_allclose(np.concatenate(d), [1 / 3] * 3)


def test_mass_log_derivatives_sum_and_finite_difference():
    ev = make_event(np.array([0.6, 1.9, 2.7]), np.array([0.5, 1.4, 2.2]), np.array([0.3, -1.7, 2.9]), beta_z=0.4)
    d = mass_log_derivatives(*ev)
    np.testing.assert_allclose(d[0] + d[1] + d[2], 1.0, rtol=1e-12)
    assert not np.allclose(d[0], d[2])  # non-trivial event
    h = 1e-5
    for i in range(3):
        up, dn = list(ev), list(ev)
        up[3 * i] = ev[3 * i] * np.exp(h)
        dn[3 * i] = ev[3 * i] * np.exp(-h)
        fd = (np.log(_mass(*up)) - np.log(_mass(*dn))) / (2 * h)
        np.testing.assert_allclose(d[i], fd, rtol=1e-6)
    np.testing.assert_allclose(_mass(*ev), M_H, rtol=1e-10)


def test_relative_mass_resolution_simple():
    # sqrt((0.5*0.02)^2 + (0.3*0.02)^2 + (0.2*0.04)^2) = sqrt(1e-4 + 3.6e-5 + 6.4e-5) = sqrt(2e-4)
    res = relative_mass_resolution(np.array([0.5]), np.array([0.3]), np.array([0.2]),
                                   np.array([0.02]), np.array([0.02]), np.array([0.04]))
    np.testing.assert_allclose(res, [np.sqrt(2e-4)])
    np.testing.assert_allclose(res, [0.01414214], rtol=1e-6)
