"""Columnar kinematics for the H -> Z(ll) gamma analysis.

All functions take equal-length numpy float64 arrays (pt [GeV], eta, phi) and
contain no Python loops over events.  Leptons and the photon are massless.
``lm`` is the negative lepton, ``lp`` the positive lepton and ``g`` the photon.
"""

from __future__ import annotations

import numpy as np
import vector
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

__all__ = [
    "delta_phi",
    "delta_r",
    "four_momenta",
    "pt_t",
    "production_decay_angles",
    "mass_log_derivatives",
    "relative_mass_resolution",
]


def _f64(x: ArrayLike) -> FloatArray:
    """Convert to a float64 numpy array."""
    return np.asarray(x, dtype=np.float64)


def delta_phi(phi1: ArrayLike, phi2: ArrayLike) -> FloatArray:
    """Return phi1 - phi2 wrapped into [-pi, pi)."""
    d = (_f64(phi1) - _f64(phi2) + np.pi) % (2.0 * np.pi) - np.pi
    return np.where(d >= np.pi, d - 2.0 * np.pi, d)  # guard against rounding to +pi


def delta_r(eta1: ArrayLike, phi1: ArrayLike, eta2: ArrayLike, phi2: ArrayLike) -> FloatArray:
    """Return Delta R = sqrt(Delta eta^2 + Delta phi^2)."""
    return np.hypot(_f64(eta1) - _f64(eta2), delta_phi(phi1, phi2))


def four_momenta(
    pt: ArrayLike, eta: ArrayLike, phi: ArrayLike, mass: ArrayLike = 0.0
) -> vector.MomentumNumpy4D:
    """Build a vector MomentumNumpy4D array from (pt, eta, phi, mass)."""
    arrays = np.broadcast_arrays(*map(_f64, (pt, eta, phi, mass)))
    pt_, eta_, phi_, m_ = (np.array(a) for a in arrays)
    return vector.array({"pt": pt_, "eta": eta_, "phi": phi_, "mass": m_})


def _pxpy(pt: ArrayLike, phi: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the transverse components (px, py)."""
    return _f64(pt) * np.cos(phi), _f64(pt) * np.sin(phi)


def pt_t(
    lm_pt: ArrayLike, lm_eta: ArrayLike, lm_phi: ArrayLike,
    lp_pt: ArrayLike, lp_eta: ArrayLike, lp_phi: ArrayLike,
    g_pt: ArrayLike, g_eta: ArrayLike, g_phi: ArrayLike,
) -> FloatArray:
    """ATLAS pTt: the ll-gamma transverse momentum component orthogonal to the thrust axis.

    References: ATLAS, Phys. Lett. B 732 (2014) 8; thrust-axis decomposition of
    Vesterinen & Wyatt, Nucl. Instrum. Meth. A 602 (2009) 432.
    t = (pT(Z) - pT(gamma)) / |pT(Z) - pT(gamma)| with pT(Z) = pT(lm) + pT(lp),
    pTt = |pT(Z gamma) x t| = |px_llg * t_y - py_llg * t_x|.  Eta is unused.
    """
    (xm, ym), (xp, yp), (xg, yg) = _pxpy(lm_pt, lm_phi), _pxpy(lp_pt, lp_phi), _pxpy(g_pt, g_phi)
    zx, zy = xm + xp, ym + yp
    tx, ty = zx - xg, zy - yg
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs((zx + xg) * ty - (zy + yg) * tx) / np.hypot(tx, ty)


def _xyz(v: vector.MomentumNumpy4D) -> FloatArray:
    """Stack the 3-momentum of a vector array into shape (n, 3)."""
    return np.stack([v.px, v.py, v.pz], axis=-1)


def _unit(v: FloatArray) -> FloatArray:
    """Normalise rows of an (n, 3) array (NaN for null vectors)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise dot product of (n, 3) arrays."""
    return np.einsum("...i,...i->...", a, b)


def production_decay_angles(
    lm_pt: ArrayLike, lm_eta: ArrayLike, lm_phi: ArrayLike,
    lp_pt: ArrayLike, lp_eta: ArrayLike, lp_phi: ArrayLike,
    g_pt: ArrayLike, g_eta: ArrayLike, g_phi: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Production/decay angles (cos_Theta, cos_theta, phi) in the ll-gamma rest frame.

    Definitions of Gainer, Keung, Low, Schwaller, Phys. Rev. D 86 (2012) 033010
    [arXiv:1112.1405] and Gainer et al., arXiv:1108.2274.
    Conventions (all vectors starred are in the ll-gamma (H) rest frame):
    * Beam partons q1 = (E+pz)/2 (1,0,0,+1), q2 = (E-pz)/2 (1,0,0,-1) from the lab
      (E, pz) of the llg system.  The quark is the parton moving along the llg
      longitudinal boost: q1 if pz >= 0 (pz == 0 -> +z), q2 if pz < 0.
      Production axis z' = unit(unit(q_quark*) - unit(q_antiquark*)).
    * cos_Theta = z' . unit(p_Z*), Z = lm + lp.
    * cos_theta = unit(lm**) . unit(p_Z*), lm** = lm* boosted from the H frame
      into the Z rest frame (negative lepton w.r.t. the Z flight direction).
    * phi = sign(p_Z* . (n1 x n2)) arccos(n1 . n2), n1 = unit(z' x p_Z*),
      n2 = unit(lm* x lp*), range [-pi, pi] (sign(0) taken as +).  Equivalently,
      phi is the right-handed rotation angle about p_Z* that takes the half-plane
      (p_Z*, z') onto the half-plane (p_Z*, lm*); phi = 0 when the lm transverse
      component (w.r.t. p_Z*) points along the quark side of the beam.
    Swapping lm <-> lp gives cos_theta -> -cos_theta and phi -> phi +- pi.
    phi is NaN where the Z is exactly collinear with z' (undefined plane).
    """
    lm = four_momenta(lm_pt, lm_eta, lm_phi)
    lp = four_momenta(lp_pt, lp_eta, lp_phi)
    z = lm + lp
    h = z + four_momenta(g_pt, g_eta, g_phi)
    e, pz = _f64(h.E), _f64(h.pz)
    zero = np.zeros_like(e)
    plus, minus = 0.5 * (e + pz), 0.5 * (e - pz)
    q1 = vector.array({"px": zero, "py": zero, "pz": plus, "E": plus})
    q2 = vector.array({"px": zero, "py": zero, "pz": -minus, "E": minus})

    u1, u2 = _unit(_xyz(q1.boostCM_of_p4(h))), _unit(_xyz(q2.boostCM_of_p4(h)))
    quark_sign = np.where(pz >= 0.0, 1.0, -1.0)[..., None]
    zaxis = _unit(quark_sign * (u1 - u2))

    z_h, lm_h, lp_h = z.boostCM_of_p4(h), lm.boostCM_of_p4(h), lp.boostCM_of_p4(h)
    zhat = _unit(_xyz(z_h))
    cos_big_theta = np.clip(_dot(zaxis, zhat), -1.0, 1.0)

    lm_z = lm_h.boostCM_of_p4(z_h)
    cos_theta = np.clip(_dot(_unit(_xyz(lm_z)), zhat), -1.0, 1.0)

    n1 = _unit(np.cross(zaxis, zhat))
    n2 = _unit(np.cross(_xyz(lm_h), _xyz(lp_h)))
    sign = np.where(_dot(zhat, np.cross(n1, n2)) >= 0.0, 1.0, -1.0)
    phi = sign * np.arccos(np.clip(_dot(n1, n2), -1.0, 1.0))
    phi = np.where(np.isnan(n1[..., 0]), np.nan, phi)
    return cos_big_theta, cos_theta, phi


def _pair_mass2(pt1: ArrayLike, eta1: ArrayLike, phi1: ArrayLike,
                pt2: ArrayLike, eta2: ArrayLike, phi2: ArrayLike) -> FloatArray:
    """Invariant mass squared of two massless objects."""
    deta, dphi = _f64(eta1) - _f64(eta2), delta_phi(phi1, phi2)
    return 2.0 * _f64(pt1) * _f64(pt2) * (np.cosh(deta) - np.cos(dphi))


def mass_log_derivatives(
    lm_pt: ArrayLike, lm_eta: ArrayLike, lm_phi: ArrayLike,
    lp_pt: ArrayLike, lp_eta: ArrayLike, lp_phi: ArrayLike,
    g_pt: ArrayLike, g_eta: ArrayLike, g_phi: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """d ln m / d ln |p_i| = (m^2 - m_jk^2) / (2 m^2) for i = lm, lp, g (massless; they sum to 1)."""
    m2_lp_g = _pair_mass2(lp_pt, lp_eta, lp_phi, g_pt, g_eta, g_phi)
    m2_lm_g = _pair_mass2(lm_pt, lm_eta, lm_phi, g_pt, g_eta, g_phi)
    m2_ll = _pair_mass2(lm_pt, lm_eta, lm_phi, lp_pt, lp_eta, lp_phi)
    m2 = m2_lp_g + m2_lm_g + m2_ll
    with np.errstate(divide="ignore", invalid="ignore"):
        return (m2 - m2_lp_g) / (2 * m2), (m2 - m2_lm_g) / (2 * m2), (m2 - m2_ll) / (2 * m2)


def relative_mass_resolution(
    d_lm: ArrayLike, d_lp: ArrayLike, d_g: ArrayLike,
    r_lm: ArrayLike, r_lp: ArrayLike, r_g: ArrayLike,
) -> FloatArray:
    """sigma_m / m = sqrt(sum_i (d_i r_i)^2) from log-derivatives d_i and relative resolutions r_i."""
    terms = [_f64(d) * _f64(r) for d, r in ((d_lm, r_lm), (d_lp, r_lp), (d_g, r_g))]
    return np.sqrt(sum(t * t for t in terms))
