"""Columnar kinematics for the H -> Z(ll) gamma analysis.

The public feature functions take equal-length numpy float64 arrays (pt [GeV], eta, phi);
the angle helpers take (n, 4) arrays [E, px, py, pz].  No Python loops over events.  Leptons and
the photon are massless.  ``lm`` is the negative lepton, ``lp`` the positive lepton and ``g`` the
photon.

The features follow the code of the paper's authors (where it and the paper text differ, the code):
* production/decay angles: jaebak/llg_angles ``llg_angles.hpp`` (``llg::get_q1``, ``get_q2``,
  ``get_lambdaZ``, ``get_cosTheta``, ``get_costheta``, ``get_phi``), called by
  jaebak/process_mc ``src/process_delphes.cxx`` to make the Delphes n-tuples of the paper;
* sigma_m: the ``llg_m_resolution`` finite-difference propagation of process_delphes.cxx;
* pTt: ``calculate_ptt`` of process_delphes.cxx (= ``get_llg_ptt`` of jaebak/htozgamma_mva).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import vector

FloatArray = NDArray[np.float64]

__all__ = [
    "delta_phi",
    "delta_r",
    "four_momenta",
    "pt_t",
    "minkowski_dot",
    "invariant_mass",
    "boost_vector",
    "boost",
    "beam_partons",
    "lambda_z",
    "cos_big_theta",
    "cos_small_theta",
    "phi_angle",
    "production_decay_angles",
    "mass_log_derivatives",
    "mass_resolution",
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
    # imported here, not with the module: vector imports sympy (0.3-0.5 s a process), which the jobs that only
    # read features through hzg.data.features (training, evaluation, fits, plots) never need
    import vector

    arrays = np.broadcast_arrays(*map(_f64, (pt, eta, phi, mass)))
    pt_, eta_, phi_, m_ = (np.array(a) for a in arrays)
    return vector.array({"pt": pt_, "eta": eta_, "phi": phi_, "mass": m_})


def _pxpy(pt: ArrayLike, phi: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the transverse components (px, py)."""
    return _f64(pt) * np.cos(phi), _f64(pt) * np.sin(phi)


def pt_t(
    lm_pt: ArrayLike,
    lm_eta: ArrayLike,
    lm_phi: ArrayLike,
    lp_pt: ArrayLike,
    lp_eta: ArrayLike,
    lp_phi: ArrayLike,
    g_pt: ArrayLike,
    g_eta: ArrayLike,
    g_phi: ArrayLike,
) -> FloatArray:
    """ATLAS pTt: the ll-gamma transverse momentum component orthogonal to the thrust axis.

    Same as ``calculate_ptt`` of jaebak/process_mc src/process_delphes.cxx,
    |pT(llg) x unit(pT(Z) - pT(gamma))| with all z components set to 0.

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


def _dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise dot product of (n, 3) arrays."""
    return np.einsum("...i,...i->...", a, b)


def _p4(pt: ArrayLike, eta: ArrayLike, phi: ArrayLike) -> FloatArray:
    """Massless four-momenta as an (n, 4) array [E, px, py, pz] (TLorentzVector::SetPtEtaPhiM with m = 0)."""
    pt_, eta_, phi_ = (np.atleast_1d(a) for a in np.broadcast_arrays(_f64(pt), _f64(eta), _f64(phi)))
    return np.stack(
        [pt_ * np.cosh(eta_), pt_ * np.cos(phi_), pt_ * np.sin(phi_), pt_ * np.sinh(eta_)], axis=-1
    )


def minkowski_dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise a.b = a0 b0 - a.b (TLorentzVector::Dot, metric +---) of (n, 4) arrays."""
    return a[..., 0] * b[..., 0] - _dot(a[..., 1:], b[..., 1:])


def invariant_mass(p: FloatArray) -> FloatArray:
    """Invariant mass of (n, 4) four-momenta (TLorentzVector::M, negative m^2 -> -sqrt(-m^2))."""
    m2 = minkowski_dot(p, p)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def boost_vector(p: FloatArray) -> FloatArray:
    """Velocity p/E of (n, 4) four-momenta, shape (n, 3) (TLorentzVector::BoostVector)."""
    return p[..., 1:] / p[..., :1]


def boost(p: FloatArray, beta: FloatArray) -> FloatArray:
    """Boost (n, 4) four-momenta by velocity beta (n, 3), exactly as TLorentzVector::Boost.

    b2 = beta^2, gamma = 1/sqrt(1 - b2), bp = beta.p, gamma2 = (gamma - 1)/b2 (0 if b2 = 0):
    p' = p + (gamma2 bp + gamma E) beta, E' = gamma (E + bp).  boost(p, -boost_vector(h)) is p in
    the rest frame of h.
    """
    b2 = _dot(beta, beta)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = _dot(beta, p[..., 1:])
    gamma2 = np.where(b2 > 0.0, (gamma - 1.0) / np.where(b2 > 0.0, b2, 1.0), 0.0)
    e = p[..., 0]
    space = p[..., 1:] + (gamma2 * bp + gamma * e)[..., None] * beta
    return np.concatenate([(gamma * (e + bp))[..., None], space], axis=-1)


def beam_partons(llg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The incoming partons q1 (moving along +z) and q2 (along -z) with q1 + q2 = llg.

    Follows ``llg::get_q1`` / ``llg::get_q2`` of jaebak/llg_angles (llg_angles.hpp, Eqs. 4-5 of
    arXiv:1108.2274): boost llg by -htran, htran = its BoostVector with the z component set to 0 (so
    its pT vanishes); there q1 = ((pz + E)/2)(1, 0, 0, 1) and q2 = ((E - pz)/2)(1, 0, 0, -1); boost
    both back by +htran.  q1 is always the +z parton (the code takes no quark/antiquark choice from
    the sign of pz), and it carries the llg transverse recoil.
    """
    htran = boost_vector(llg) * np.array([1.0, 1.0, 0.0])
    h_t = boost(llg, -htran)
    e, pz = h_t[..., 0], h_t[..., 3]
    zero = np.zeros_like(e)
    k1 = np.stack([(e + pz) / 2, zero, zero, (pz + e) / 2], axis=-1)
    k2 = np.stack([(e - pz) / 2, zero, zero, (pz - e) / 2], axis=-1)
    return boost(k1, htran), boost(k2, htran)


def lambda_z(ll: FloatArray, llg: FloatArray) -> FloatArray:
    """|p_Z| in the llg rest frame, sqrt((llg.ll / M)^2 - m_ll^2) (``llg::get_lambdaZ``, Eq. 7)."""
    return np.sqrt((minkowski_dot(llg, ll) / invariant_mass(llg)) ** 2 - invariant_mass(ll) ** 2)


def cos_big_theta(lm: FloatArray, lp: FloatArray, g: FloatArray) -> FloatArray:
    """cos Theta = ll.(q2 - q1) / (M lambda_Z) (``llg::get_cosTheta``, Eq. 8; not clipped).

    In the llg rest frame q1 - q2 = (0, M q1_hat), so this is the cosine of the angle between the Z
    and the +z parton q1 (`beam_partons`) in the llg rest frame.
    """
    ll, llg = lm + lp, lm + lp + g
    q1, q2 = beam_partons(llg)
    return minkowski_dot(ll, q2 - q1) / (invariant_mass(llg) * lambda_z(ll, llg))


def cos_small_theta(lm: FloatArray, lp: FloatArray, g: FloatArray) -> FloatArray:
    """cos theta = llg.(lp - lm) / (M lambda_Z) (``llg::get_costheta``, Eq. 13).

    For massless leptons: the cosine of the angle between the POSITIVE lepton in the Z rest frame and
    the Z direction in the llg rest frame.  As in the code, values above 1 become 0.999 and values
    below -1 become -0.999.
    """
    ll, llg = lm + lp, lm + lp + g
    c = minkowski_dot(llg, lp - lm) / (invariant_mass(llg) * lambda_z(ll, llg))
    return np.where(c > 1.0, 0.999, np.where(c < -1.0, -0.999, c))


def phi_angle(lm: FloatArray, lp: FloatArray, g: FloatArray) -> FloatArray:
    """phi in [0, 2 pi) (``llg::get_phi``, Eqs. 21-22), computed in the llg rest frame.

    With l1 = lm*, l2 = lp*, q1*, Z* boosted by -BoostVector(llg) and sinTheta = sqrt(1 - cosTheta^2):
    cos phi = -(l1 x l2).(q1 x Z) / |l1 x l2| / |q1 x Z|, clamped to [-1, 1];
    sin phi = -(l1 x l2).q1 / |l1 x l2| / |q1| / sinTheta;
    phi = -acos(cos phi) if sin phi < 0 else acos(cos phi); phi += 2 pi if phi < 0.
    Geometrically: the right-handed rotation angle about Z* from the component of q1* transverse to
    Z* to the component of lp* transverse to Z*.  NaN when the Z is collinear with q1*.
    """
    llg = lm + lp + g
    to_h = -boost_vector(llg)
    l1, l2 = boost(lm, to_h)[..., 1:], boost(lp, to_h)[..., 1:]
    q1 = boost(beam_partons(llg)[0], to_h)[..., 1:]
    ll = boost(lm + lp, to_h)[..., 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        sin_big = np.sqrt(1.0 - cos_big_theta(lm, lp, g) ** 2)
        n_l = np.cross(l1, l2)
        norm_l = np.linalg.norm(n_l, axis=-1)
        q1_x_ll = np.cross(q1, ll)
        cos_phi = -_dot(n_l, q1_x_ll) / norm_l / np.linalg.norm(q1_x_ll, axis=-1)
        sin_phi = -_dot(n_l, q1) / norm_l / np.linalg.norm(q1, axis=-1) / sin_big
        cos_phi = np.where(cos_phi > 1.0, 1.0, np.where(cos_phi < -1.0, -1.0, cos_phi))
        phi = np.where(sin_phi < 0.0, -np.arccos(cos_phi), np.arccos(cos_phi))
    return np.where(phi < 0.0, phi + 2.0 * np.pi, phi) + 0.0  # + 0.0 turns -0.0 into 0.0


def production_decay_angles(
    lm_pt: ArrayLike,
    lm_eta: ArrayLike,
    lm_phi: ArrayLike,
    lp_pt: ArrayLike,
    lp_eta: ArrayLike,
    lp_phi: ArrayLike,
    g_pt: ArrayLike,
    g_eta: ArrayLike,
    g_phi: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(cos Theta, cos theta, phi) of the paper's authors, from massless (pt, eta, phi) objects.

    A port of jaebak/llg_angles, llg_angles.hpp (commit 0ba98c4, "Correct calculations"; the same
    functions are in jaebak/process_mc inc/llg_angles.hpp, which src/process_delphes.cxx calls as
    llg::get_cosTheta / get_costheta / get_phi(lep_minus, lep_plus, photon) to fill llg_cosTheta,
    llg_costheta, llg_Phi of the Delphes n-tuples the paper trains on): see `cos_big_theta`,
    `cos_small_theta`, `phi_angle`.  Definitions of Gainer et al., arXiv:1108.2274.
    """
    lm, lp, g = _p4(lm_pt, lm_eta, lm_phi), _p4(lp_pt, lp_eta, lp_phi), _p4(g_pt, g_eta, g_phi)
    return cos_big_theta(lm, lp, g), cos_small_theta(lm, lp, g), phi_angle(lm, lp, g)


def _pair_mass2(
    pt1: ArrayLike, eta1: ArrayLike, phi1: ArrayLike, pt2: ArrayLike, eta2: ArrayLike, phi2: ArrayLike
) -> FloatArray:
    """Invariant mass squared of two massless objects."""
    deta, dphi = _f64(eta1) - _f64(eta2), delta_phi(phi1, phi2)
    return 2.0 * _f64(pt1) * _f64(pt2) * (np.cosh(deta) - np.cos(dphi))


def mass_log_derivatives(
    lm_pt: ArrayLike,
    lm_eta: ArrayLike,
    lm_phi: ArrayLike,
    lp_pt: ArrayLike,
    lp_eta: ArrayLike,
    lp_phi: ArrayLike,
    g_pt: ArrayLike,
    g_eta: ArrayLike,
    g_phi: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """d ln m / d ln |p_i| = (m^2 - m_jk^2) / (2 m^2) for i = lm, lp, g (massless; they sum to 1)."""
    m2_lp_g = _pair_mass2(lp_pt, lp_eta, lp_phi, g_pt, g_eta, g_phi)
    m2_lm_g = _pair_mass2(lm_pt, lm_eta, lm_phi, g_pt, g_eta, g_phi)
    m2_ll = _pair_mass2(lm_pt, lm_eta, lm_phi, lp_pt, lp_eta, lp_phi)
    m2 = m2_lp_g + m2_lm_g + m2_ll
    with np.errstate(divide="ignore", invalid="ignore"):
        return (m2 - m2_lp_g) / (2 * m2), (m2 - m2_lm_g) / (2 * m2), (m2 - m2_ll) / (2 * m2)


def mass_resolution(
    lm_pt: ArrayLike,
    lm_eta: ArrayLike,
    lm_phi: ArrayLike,
    lp_pt: ArrayLike,
    lp_eta: ArrayLike,
    lp_phi: ArrayLike,
    g_pt: ArrayLike,
    g_eta: ArrayLike,
    g_phi: ArrayLike,
    r_lm: ArrayLike,
    r_lp: ArrayLike,
    r_g: ArrayLike,
) -> FloatArray:
    """sigma_m [GeV] of m_llg from the relative pT resolutions r_i of the three objects.

    Follows the ``llg_m_resolution`` block of jaebak/process_mc src/process_delphes.cxx (the
    ``llphoton_{l1,l2,ph}_masserr`` of nano2pico, summed by ``get_mass_err`` in
    jaebak/htozgamma_mva zgamma_preprocess.py into the paper's ``llg_mass_err``): each object's pT
    is raised by its resolution sigma_pT,i = r_i pT,i at fixed eta, phi, the others kept nominal,
    dm_i = m(shifted) - m(nominal), and sigma_m = sqrt(dm_lm^2 + dm_lp^2 + dm_g^2).
    Objects are massless here (the code gives the leptons their rest mass: a < 1e-5 relative effect).
    """
    lm, lp, g = _p4(lm_pt, lm_eta, lm_phi), _p4(lp_pt, lp_eta, lp_phi), _p4(g_pt, g_eta, g_phi)
    nominal = invariant_mass(lm + lp + g)
    up = [1.0 + np.atleast_1d(_f64(r))[..., None] for r in (r_lm, r_lp, r_g)]
    dm_lm = invariant_mass(lm * up[0] + lp + g) - nominal
    dm_lp = invariant_mass(lm + lp * up[1] + g) - nominal
    dm_g = invariant_mass(lm + lp + g * up[2]) - nominal
    return np.sqrt(dm_lm**2 + dm_lp**2 + dm_g**2)
