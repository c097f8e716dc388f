"""Monte Carlo generation with Pythia 8: hard process, shower and the final-state particle record.

The generator produces, per chunk, the visible final-state particles of every event as jagged
awkward arrays; `hzg.data.detector` turns them into reconstructed objects.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import ArrayLike

import awkward as ak
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

PB_PER_MB = 1.0e9
#: Higgs boson mass of the signal process unless a sample sets `generate.higgs_mass`, GeV
SM_HIGGS_MASS = 125.0
#: Processes with a Higgs boson, whose mass a sample may set (`generate.higgs_mass`)
HIGGS_PROCESSES = ("ggH_Zgamma", "vbf_H_Zgamma")

#: Pythia 8 settings of each process we can generate (13 TeV pp, set in `pythia_settings`).
PROCESSES: dict[str, list[str]] = {
    # gg -> H (LO, heavy-top effective vertex) with H -> Z gamma, Z -> ee / mumu
    "ggH_Zgamma": [
        "HiggsSM:gg2H = on",
        "25:m0 = 125.0",
        "25:onMode = off",
        "25:onIfMatch = 22 23",
        "23:onMode = off",
        "23:onIfAny = 11 13",
    ],
    # vector-boson fusion q q -> q q H (t-channel W W and Z Z fusion, LO) with H -> Z gamma, Z -> ee / mumu as
    # ggH_Zgamma: a signal process (no background cut, bias or veto), the VBF class of a multiclass run
    # (seed 002; hzg.learn.multiclass)
    "vbf_H_Zgamma": [
        "HiggsSM:ff2Hff(t:WW) = on",
        "HiggsSM:ff2Hff(t:ZZ) = on",
        "25:m0 = 125.0",
        "25:onMode = off",
        "25:onIfMatch = 22 23",
        "23:onMode = off",
        "23:onIfAny = 11 13",
    ],
    # q qbar -> gamma*/Z gamma with full gamma*/Z interference, Z/gamma* -> ee / mumu
    "qqbar_Zgamma": [
        "WeakBosonAndParton:ffbar2gmZgm = on",
        "23:onMode = off",
        "23:onIfAny = 11 13",
    ],
    # Drell-Yan q qbar -> gamma*/Z -> ee / mumu with the photon radiated off a lepton (FSR), the part of
    # pp -> Z(ll)gamma that qqbar_Zgamma lacks. The quarks' QED shower is off so that an initial-state
    # photon, which qqbar_Zgamma generates at matrix-element level, is not counted twice.
    "drellyan_fsr": [
        "WeakSingleBoson:ffbar2gmZ = on",
        "23:onMode = off",
        "23:onIfAny = 11 13",
        "SpaceShower:QEDshowerByQ = off",
    ],
    # Drell-Yan + jet, q qbar -> gamma*/Z g and q g -> gamma*/Z q, with the photon radiated off a lepton: the
    # high-recoil slice of drellyan_fsr (`generation.fsr_slice_pt`; `FSR_PROCESSES`). Its first initial-state
    # emission is the matrix element's parton, which drellyan_fsr reaches only through its shower (there the
    # same matrix elements, Pythia's matrix-element correction of the first emission); drellyan_fsr drops
    # its events whose first emission lies above the slice's p-hat_T, so that nothing is counted twice.
    "drellyan_jet_fsr": [
        "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on",
        "23:onMode = off",
        "23:onIfAny = 11 13",
        "SpaceShower:QEDshowerByQ = off",
    ],
}

#: Switches of the generation level. "parton": no multi-parton interactions and no
#: hadronisation, final state = leptons, photons and partons of the hard process and showers;
#: "hadron": the full event with underlying event and hadrons (about 10x slower).
LEVELS: dict[str, list[str]] = {
    "parton": ["PartonLevel:MPI = off", "HadronLevel:all = off"],
    "hadron": ["PartonLevel:MPI = on", "HadronLevel:all = on"],
}


@dataclass(frozen=True)
class Bias:
    """Hard-process selection bias (see `selection_bias`); events carry the weight 1 / bias."""

    pt_over_m_power: float = 0.0
    pt_over_m_ref: float = 0.1
    mass_peak: float = 125.0
    mass_width: float = 8.0
    mass_boost: float = 0.0
    #: the mass m of the bias (its peak and its p-hat_T / m): "mhat" (the hard process' m-hat; m(gamma*/Z)
    #: of a 2 -> 1 Drell-Yan event) or "m3" (the first outgoing particle's mass: m(gamma*/Z) of Drell-Yan
    #: + jet)
    mass_variable: str = "mhat"


@dataclass(frozen=True)
class AcceptanceVeto:
    """Veto on the hard process, before the shower: leptons and photon far outside the selection.

    Pythia counts vetoed events as not accepted, so its cross-section is that of the kept events.
    """

    lead_lepton_pt: float = 15.0
    sublead_lepton_pt: float = 8.0
    photon_pt: float = 8.0
    eta_max: float = 3.0
    require_photon: bool = True  # False for Drell-Yan, whose photon comes from the shower

    def passes(
        self,
        lepton_pt: Sequence[float],
        lepton_eta: Sequence[float],
        photon_pt: Sequence[float],
        photon_eta: Sequence[float],
    ) -> bool:
        """True when two leptons and (if required) a photon of the hard process are inside the loose
        acceptance.

        Radiation only lowers a lepton's pT, but the initial-state shower's recoil boosts the hard system
        after this check: an event cut here can end up in the selection. For qqbar -> Z gamma that is
        17 +- 5 % of the selected background in 120-130 GeV with pT(llg)/m(llg) > 0.4, almost all from
        `eta_max` (docs/physics.md, "Monte Carlo where the classifiers cut";
        `bench/bench_fsr_slice.py --veto-check`).
        """
        leptons = sorted(
            (pt for pt, eta in zip(lepton_pt, lepton_eta) if abs(eta) < self.eta_max), reverse=True
        )
        photon = any(
            pt > self.photon_pt and abs(eta) < self.eta_max for pt, eta in zip(photon_pt, photon_eta)
        )
        return (
            (photon or not self.require_photon)
            and len(leptons) >= 2
            and leptons[0] > self.lead_lepton_pt
            and leptons[1] > self.sublead_lepton_pt
        )


@dataclass(frozen=True)
class FsrFilter:
    """How the Drell-Yan FSR sample is made cheap (process `drellyan_fsr`).

    Photon emission off charged particles in the final-state shower is enhanced by `enhance`
    (Pythia's `EnhancedSplittings`, fsr:Q2QA; events carry the compensating weight), the leptons'
    QED shower stops at `lepton_qed_cutoff` GeV of dipole pT (emissions below it are photons within
    about 0.03 in Delta R of their lepton, which the selection's Delta R > 0.4 never takes), and the
    event is dropped after the shower, before hadronisation and the detector, unless a photon with
    pT > `photon_pt` lies more than `min_dr` from every lepton. Pythia counts the dropped events as
    not accepted, so its cross-section times the mean kept weight is that of the kept events.
    """

    enhance: float = 5.0
    lepton_qed_cutoff: float = 0.5
    photon_pt: float = 12.0
    min_dr: float = 0.4

    def passes(self, event: Any) -> bool:
        """True when the showered event holds an isolated photon (see the class docstring)."""
        return isolated_photon_pt(event, self.min_dr) > self.photon_pt


@dataclass(frozen=True)
class ShowerAcceptance:
    """Loose acceptance of the showered event, checked before hadronisation
    (`ChunkSpec.veto_before_hadronisation`).

    The preselection's cuts loosened by 20 % or more (several times the detector's resolutions): a
    same-flavour opposite-sign e or mu pair and a photon further than `min_dr` from both, with the
    masses (massless objects) in the widened windows. Hadronisation and hadron decays do not move the
    leptons and photons of the shower; an event that fails can only be selected through a lepton or
    photon from a hadron decay that passes the isolation, which `bench/bench_generate.py` checks is rare.
    """

    lead_lepton_pt: float = 20.0
    sublead_lepton_pt: float = 12.0
    photon_pt: float = 10.0
    eta_max: float = 2.6
    min_dr: float = 0.3
    mll_min: float = 40.0
    mllg_min: float = 85.0
    mllg_max: float = 200.0

    def passes(self, record: Any) -> bool:
        """True when the showered record holds a lepton pair and a photon inside the loose acceptance."""
        leptons: list[tuple[int, float, float, float]] = []
        photons: list[tuple[float, float, float]] = []
        for particle in record.particles():
            if particle.status() <= 0:
                continue
            pid = particle.id()
            if abs(pid) in (11, 13) or pid == 22:
                pt = particle.pT()
                if (
                    pt > (self.sublead_lepton_pt if pid != 22 else self.photon_pt)
                    and abs(particle.eta()) < self.eta_max
                ):
                    if pid == 22:
                        photons.append((pt, particle.eta(), particle.phi()))
                    else:
                        leptons.append((pid, pt, particle.eta(), particle.phi()))
        if len(leptons) < 2 or not photons:
            return False
        for i, l1 in enumerate(leptons):
            for l2 in leptons[i + 1 :]:
                if l1[0] != -l2[0] or max(l1[1], l2[1]) <= self.lead_lepton_pt:
                    continue
                mll2 = _pair_mass2(l1[1:], l2[1:])
                if mll2 <= self.mll_min**2:
                    continue
                for g in photons:
                    if min(_delta_r(g, l1[1:]), _delta_r(g, l2[1:])) <= self.min_dr:
                        continue
                    mllg2 = mll2 + _pair_mass2(l1[1:], g) + _pair_mass2(l2[1:], g)
                    if self.mllg_min**2 < mllg2 < self.mllg_max**2:
                        return True
        return False


def _pair_mass2(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """Squared invariant mass of two massless objects given as (pT, eta, phi)."""
    return 2.0 * a[0] * b[0] * (math.cosh(a[1] - b[1]) - math.cos(a[2] - b[2]))


def _delta_r(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    return math.hypot(a[1] - b[1], math.remainder(a[2] - b[2], 2.0 * math.pi))


def isolated_photon_pt(event: Any, min_dr: float) -> float:
    """Highest pT of a final photon further than `min_dr` from every final charged lepton (0: none)."""
    leptons, photons = final_leptons_and_photons(event)
    best = 0.0
    for pt, eta, phi in photons:
        if pt <= best:
            continue
        if all(
            math.hypot(eta - l_eta, math.remainder(phi - l_phi, 2.0 * math.pi)) > min_dr
            for _, l_eta, l_phi in leptons
        ):
            best = pt
    return best


@dataclass(frozen=True)
class ChunkSpec:
    """What one generation job makes."""

    process: str
    n_events: int
    seed: int
    level: str = "parton"
    sqrt_s_tev: float = 13.0
    z_mass_min: float = 50.0
    pthat_min: float = 10.0
    mhat_min: float = 95.0
    mhat_max: float = -1.0
    factor_scale2: int = 1
    isr_max: str = "factorization"
    isr_damp_fudge: float = 1.0
    isr_max_fudge: float = 1.0
    isr_veto_ht: float | None = None
    bias: Bias | None = None
    veto: AcceptanceVeto | None = None
    fsr: FsrFilter | None = None
    #: at hadron level: check `ShowerAcceptance` on the showered event, before hadronisation, and hadronise
    #: (Pythia's forceHadronLevel) only the events that pass; the others are kept, with their weight, without
    #: particles.
    veto_before_hadronisation: bool = False
    #: Higgs boson mass of the signal process (ggH_Zgamma), GeV: a sample's `generate.higgs_mass` (the mass
    #: scan of config/mass_scan.yaml); the default's 125 GeV leaves the settings as they always were
    higgs_mass: float = SM_HIGGS_MASS
    #: QCD final-state shower (Pythia TimeShower:QCDshower). Off is allowed at parton level only, where
    #: nothing hadronises: the leptons, the photon and the ISR recoil are unchanged (QED FSR stays on), and
    #: it saves 30 % (qqbar -> Z gamma) to 60 % (ggH) of a chunk's time (`generation.qcd_final_state_shower`)
    qcd_fsr: bool = True
    #: the p-hat_T (GeV) that splits Drell-Yan FSR into two samples (`generation.fsr_slice_pt`): drellyan_fsr
    #: drops its events whose first initial-state emission is harder; drellyan_jet_fsr generates p-hat_T above
    #: it. None: drellyan_fsr alone, unsliced
    fsr_slice_pt: float | None = None
    #: strata of m-hat, (low edge, high edge, fraction of the chunk's events) each, made one Pythia run after
    #: the other (`generation.mhat_strata`, `StratifiedGenerator`); None: one run over [mhat_min, mhat_max]
    mhat_strata: tuple[tuple[float, float, float], ...] | None = None

    @property
    def hadron_veto(self) -> ShowerAcceptance | None:
        """The acceptance checked after the shower and before hadronisation (None: every event is
        hadronised)."""
        return ShowerAcceptance() if self.level == "hadron" and self.veto_before_hadronisation else None

    @property
    def native_bias(self) -> NativeBias | None:
        """The selection bias as Pythia's p-hat_T bias and an m-hat thinning (`NativeBias`), where it applies;
        None: the bias (if any) in the user hook."""
        return native_bias(self.process, self.bias, self.pthat_min, self.mhat_min, self.mhat_max)


@dataclass(frozen=True)
class ChunkInfo:
    """Per-chunk metadata written beside the events.

    `sigma_gen_pb` is the cross-section of what was generated (unbiased: with a selection bias it
    is Pythia's biased estimate times the mean compensating weight).
    """

    n_generated: int
    sum_weights: float
    sigma_gen_pb: float
    sigma_err_pb: float


#: p-hat_T / m-hat below which the selection bias stays constant (avoids a vanishing bias).
BIAS_FLOOR = 0.01


def selection_bias(pthat: ArrayLike, mhat: ArrayLike, bias: Bias) -> np.ndarray:
    """Bias of the hard-process selection.

    (max(p-hat_T / m-hat, BIAS_FLOOR) / ref) ** power x (1 + boost x exp(-(m-hat - peak)^2 / 2 width^2)).
    Events are generated with probability proportional to sigma x bias and carry the weight
    1 / bias, so every distribution stays unbiased, while the central, high-p_T / m configurations
    near the Higgs mass (the signal-like region, where the classifiers cut) get more Monte Carlo events.
    """
    mhat = np.asarray(mhat, np.float64)
    x = np.maximum(np.asarray(pthat, np.float64) / mhat, BIAS_FLOOR)
    peak = 1.0 + bias.mass_boost * np.exp(-0.5 * ((mhat - bias.mass_peak) / bias.mass_width) ** 2)
    return (x / bias.pt_over_m_ref) ** bias.pt_over_m_power * peak


#: Hard processes whose selection bias Pythia applies itself (`NativeBias`): 2 -> 2 processes whose bias mass
#: is m-hat (PhaseSpace:bias2Selection accepts 2 -> 2 processes only).
NATIVE_BIAS_PROCESSES = ("qqbar_Zgamma",)
#: Third entropy word of the m-hat thinning's random stream (`NativeBias`), apart from Pythia's and the
#: detector's.
THINNING_STREAM = 2


@dataclass(frozen=True)
class NativeBias:
    """`selection_bias` of a 2 -> 2 process in two factors, so that no Python runs per trial phase-space
    point: Pythia's own p-hat_T power (PhaseSpace:bias2Selection, b = (p-hat_T / pthat_ref)^power, in C++)
    for every trial point, and a thinning of the selected hard processes in m-hat (kept with probability
    t(m-hat) = (mass_ref / m-hat)^power x peak(m-hat) / thin_max, by the process-level user hook, before the
    shower). The product b t is `selection_bias` / thin_max: the accepted events follow the same law as with
    the bias in a user hook, and carry the weight thin_max / selection_bias. Pythia calls a Python bias hook
    about 40 times per accepted event (the trial points); the thinning runs once per selected event. Over the
    whole m-hat range it keeps only about a third of them (the bias' mass peak is 3x its sidebands), which
    costs more trial points than the hook saves; within the m-hat strata of `StratifiedGenerator`, where the
    m-hat factor changes little, it keeps about 80 % (docs/physics.md, "Generation").
    """

    bias: Bias
    #: m-hat of the reference (the lower end of the generated m-hat range), GeV
    mass_ref: float
    #: maximum of (mass_ref / m-hat)^power x peak(m-hat) over the generated m-hat range
    thin_max: float

    @property
    def pthat_ref(self) -> float:
        """Pythia's PhaseSpace:bias2SelectionRef, GeV: pt_over_m_ref x mass_ref."""
        return self.bias.pt_over_m_ref * self.mass_ref

    def pythia_lines(self) -> list[str]:
        """Pythia's settings of the p-hat_T factor (none for a bias without p-hat_T power)."""
        if self.bias.pt_over_m_power == 0.0:
            return []
        return [
            "PhaseSpace:bias2Selection = on",
            f"PhaseSpace:bias2SelectionPow = {self.bias.pt_over_m_power!r}",
            f"PhaseSpace:bias2SelectionRef = {self.pthat_ref!r}",
        ]

    def pythia_weight(self, pthat: float) -> float:
        """The weight Pythia gives an event of this p-hat_T, 1 / b."""
        return (self.pthat_ref / pthat) ** self.bias.pt_over_m_power

    def keep_probability(self, mhat: ArrayLike) -> np.ndarray:
        """t(m-hat), the probability that the thinning keeps a selected hard process (at most 1)."""
        return _mass_shape(np.asarray(mhat, np.float64), self.bias, self.mass_ref) / self.thin_max

    def weights(self, pthat: ArrayLike, mhat: ArrayLike) -> np.ndarray:
        """The accepted events' weights, 1 / (b t) = thin_max / selection_bias."""
        return self.thin_max / selection_bias(pthat, mhat, self.bias)


def _mass_shape(mhat: np.ndarray, bias: Bias, mass_ref: float) -> np.ndarray:
    """(mass_ref / m-hat)^power x (1 + boost exp(-(m-hat - peak)^2 / 2 width^2)): the m-hat factor of
    `selection_bias` once its p-hat_T power is taken as (p-hat_T / (ref mass_ref))^power."""
    peak = 1.0 + bias.mass_boost * np.exp(-0.5 * ((mhat - bias.mass_peak) / bias.mass_width) ** 2)
    return (mass_ref / mhat) ** bias.pt_over_m_power * peak


#: Points of the grid on which `native_bias` finds the maximum of the thinning's m-hat shape, and the margin
#: above it (the grid's spacing, under 0.01 GeV, misses the maximum by a relative 1e-9 at most).
_THIN_GRID = 200_001
_THIN_MARGIN = 1.0 + 1e-6


def native_bias(
    process: str, bias: Bias | None, pthat_min: float, mhat_min: float, mhat_max: float
) -> NativeBias | None:
    """The `NativeBias` of a process' bias, or None where it cannot reproduce `selection_bias` and the bias
    stays in the user hook: a process Pythia cannot bias (not 2 -> 2 in m-hat), no upper m-hat cut, or a
    p-hat_T / m-hat that can fall below BIAS_FLOOR (where `selection_bias` stops falling; Pythia's factor has
    no floor)."""
    if bias is None or process not in NATIVE_BIAS_PROCESSES or bias.mass_variable != "mhat":
        return None
    if not mhat_max > mhat_min > 0.0 or pthat_min / mhat_max < BIAS_FLOOR:
        return None
    if not 0.0 <= bias.pt_over_m_power <= 10.0 or bias.pt_over_m_ref * mhat_min < 1.0:
        return None  # outside PhaseSpace:bias2SelectionPow's and bias2SelectionRef's ranges
    grid = np.linspace(mhat_min, mhat_max, _THIN_GRID)
    thin_max = float(np.max(_mass_shape(grid, bias, mhat_min))) * _THIN_MARGIN
    return NativeBias(bias=bias, mass_ref=float(mhat_min), thin_max=thin_max)


#: Where the initial-state shower of the background starts (`generation.isr_max`):
#: "factorization": at the factorisation scale, Pythia's default for a final state with a photon and
#: the behaviour of an LHE event showered from its SCALUP; "power": at the kinematic limit (as the
#: signal's gg -> H, which has no final-state parton); "power_damped": at the kinematic limit with
#: the damping k^2 Q^2 / (pT^2 + k^2 Q^2) of Corke and Sjostrand (EPJC 69 (2010) 1), which follows the
#: real-emission matrix element (here q qbar -> Z gamma g, q g -> Z gamma q) between the two; k is
#: `generation.isr_damp_fudge` (SpaceShower:pTdampFudge) and Q the factorisation scale; "scale": at f Q for
#: every process (SpaceShower:pTmaxMatch = 1, f = `generation.isr_max_fudge`, SpaceShower:pTmaxFudge), as an
#: LHE event showered from a starting scale f times its factorisation scale. These choices act on both
#: background processes (`BACKGROUND_ISR_PROCESSES`: the paper's single pp -> Z(ll)gamma sample was showered
#: alike); with `generation.isr_veto_ht` f' a UserHook also vetoes every initial-state emission of the hard
#: system harder than f' HT/2 (HT/2: half the sum of the transverse masses of the hard process' final state,
#: MadGraph's default dynamic scale; for a pT-ordered shower the vetoed shower is the shower started at that
#: scale), the cut an LHE event showered from its SCALUP has, the same physical scale for qqbar -> Z gamma and
#: for Drell-Yan.
ISR_MAX: dict[str, list[str]] = {
    "factorization": ["SpaceShower:pTmaxMatch = 0", "SpaceShower:pTdampMatch = 0"],
    "scale": ["SpaceShower:pTmaxMatch = 1", "SpaceShower:pTdampMatch = 0"],
    "power": ["SpaceShower:pTmaxMatch = 2", "SpaceShower:pTdampMatch = 0"],
    "power_damped": ["SpaceShower:pTmaxMatch = 2", "SpaceShower:pTdampMatch = 1"],
}

#: Processes that the background generator settings (cuts, scale, veto, bias) apply to.
BACKGROUND_PROCESSES = ("qqbar_Zgamma",)
#: Processes whose initial-state shower follows `generation.isr_max`, `isr_damp_fudge`, `isr_max_fudge` and
#: `isr_veto_ht` (both parts of the paper's one pp -> Z(ll)gamma sample were showered alike).
BACKGROUND_ISR_PROCESSES = ("qqbar_Zgamma", "drellyan_fsr")
#: Processes whose hard process gets the acceptance veto (leptons only for Drell-Yan).
VETOED_PROCESSES = ("qqbar_Zgamma", "drellyan_fsr", "drellyan_jet_fsr")
#: Drell-Yan with the photon radiated off a lepton (`generation.fsr`, `generation.fsr_bias`): the 2 -> 1
#: sample and its high-recoil slice.
FSR_PROCESSES = ("drellyan_fsr", "drellyan_jet_fsr")


def chunk_spec(
    process: str,
    n_events: int,
    seed: int,
    generation: Mapping[str, Any],
    sqrt_s_tev: float,
    higgs_mass: float = SM_HIGGS_MASS,
) -> ChunkSpec:
    """The ChunkSpec of one chunk from the config's `generation` section (optional keys: off) and the sample's
    Higgs mass (`generate.higgs_mass`, a Higgs process only)."""
    if float(higgs_mass) != SM_HIGGS_MASS and process not in HIGGS_PROCESSES:
        raise ValueError(
            f"generate.higgs_mass {higgs_mass} is set for process {process!r}, which has no Higgs boson "
            f"(processes with one: {list(HIGGS_PROCESSES)})"
        )
    background = process in BACKGROUND_PROCESSES
    isr = process in BACKGROUND_ISR_PROCESSES
    veto = (
        dict(generation["acceptance_veto"])
        if process in VETOED_PROCESSES and generation.get("acceptance_veto")
        else None
    )
    if veto is not None and process != "qqbar_Zgamma":
        veto["require_photon"] = False
    bias = generation.get("bias") if background else None
    fsr = generation.get("fsr") if process in FSR_PROCESSES else None
    if process in FSR_PROCESSES and generation.get("fsr_bias"):
        bias = dict(generation["fsr_bias"])  # in m(gamma*/Z); p-hat_T / m(gamma*/Z) for the slice only
        if process == "drellyan_jet_fsr":
            bias["mass_variable"] = "m3"
        else:  # a 2 -> 1 process has no p-hat_T
            bias.pop("pt_over_m_power", None)
            bias.pop("pt_over_m_ref", None)
    strata = mhat_strata(generation) if background else None
    slice_pt = generation.get("fsr_slice_pt")
    if process == "drellyan_jet_fsr" and slice_pt is None:
        raise ValueError(
            "process drellyan_jet_fsr is the high-recoil slice of drellyan_fsr: it needs "
            "generation.fsr_slice_pt"
        )
    return ChunkSpec(
        process=process,
        n_events=int(n_events),
        seed=int(seed),
        level=generation["level"],
        sqrt_s_tev=float(sqrt_s_tev),
        z_mass_min=float(generation["z_mass_min"]),
        pthat_min=float(generation["pthat_min"]),
        mhat_min=float(generation["mhat_min"]),
        mhat_max=float(generation.get("mhat_max", -1.0)),
        factor_scale2=int(generation.get("factor_scale2", 1)),
        isr_max=str(generation.get("isr_max", "factorization")) if isr else "factorization",
        isr_damp_fudge=float(generation.get("isr_damp_fudge", 1.0)),
        isr_max_fudge=float(generation.get("isr_max_fudge", 1.0)),
        isr_veto_ht=float(generation["isr_veto_ht"])
        if (isr or process == "drellyan_jet_fsr") and generation.get("isr_veto_ht") is not None
        else None,
        veto=AcceptanceVeto(**veto) if veto else None,
        bias=Bias(**bias) if bias else None,
        fsr=FsrFilter(**fsr) if fsr else None,
        veto_before_hadronisation=bool(generation.get("veto_before_hadronisation", False)),
        higgs_mass=float(higgs_mass),
        qcd_fsr=bool(generation.get("qcd_final_state_shower", True)),
        fsr_slice_pt=float(slice_pt) if process in FSR_PROCESSES and slice_pt is not None else None,
        mhat_strata=strata,
    )


def mhat_strata(generation: Mapping[str, Any]) -> tuple[tuple[float, float, float], ...] | None:
    """(low, high, fraction) of each m-hat stratum of `generation.mhat_strata`, checked: the edges tile
    [mhat_min, mhat_max] and the fractions, one per stratum, are positive and sum to 1."""
    strata = generation.get("mhat_strata")
    if not strata:
        return None
    edges = [float(e) for e in strata["edges"]]
    fractions = [float(f) for f in strata["fractions"]]
    lo, hi = float(generation["mhat_min"]), float(generation.get("mhat_max", -1.0))
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or (edges[0], edges[-1]) != (lo, hi):
        raise ValueError(
            f"generation.mhat_strata.edges {edges} must increase from generation.mhat_min ({lo}) to "
            f"generation.mhat_max ({hi})"
        )
    if len(fractions) != len(edges) - 1 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"generation.mhat_strata.fractions {fractions} must be one positive fraction per stratum "
            f"({len(edges) - 1}), summing to 1"
        )
    return tuple(zip(edges[:-1], edges[1:], fractions))


def stratum_counts(n_events: int, fractions: Sequence[float]) -> list[int]:
    """Events of each stratum: the largest-remainder apportionment of n_events by the fractions, at least one
    per stratum (a stratum without events would leave its cross-section out of the chunk's)."""
    k = len(fractions)
    if n_events < k:
        raise ValueError(
            f"a chunk of {n_events} events cannot fill {k} m-hat strata (generation.mhat_strata)"
        )
    share = n_events * np.asarray(fractions, np.float64) / float(np.sum(fractions))
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n_events - int(counts.sum())]] += 1
    for i in np.flatnonzero(counts == 0):
        counts[int(np.argmax(counts))] -= 1
        counts[i] = 1
    return counts.tolist()


#: Offset of the strata's index in `chunk_seed` (`stratum_seed`), apart from any chunk number.
_STRATUM_SEED_OFFSET = 1_000_000


def stratum_seed(seed: int, stratum: int) -> int:
    """Pythia seed of one m-hat stratum of a chunk, from the chunk's seed."""
    return chunk_seed(seed, _STRATUM_SEED_OFFSET + int(stratum))


def thinning_seed(seed: int) -> int:
    """Seed of the m-hat thinning's random stream of a chunk (`NativeBias`), from the chunk's Pythia seed."""
    return int(np.random.SeedSequence([int(seed), THINNING_STREAM]).generate_state(1, dtype=np.uint64)[0])


def chunk_seed(sample_seed: int, chunk: int) -> int:
    """Pythia seed of one chunk: a deterministic, well-mixed function of (sample seed, chunk).

    Pythia accepts seeds in [1, 900 000 000].
    """
    state = np.random.SeedSequence([int(sample_seed), int(chunk)]).generate_state(1, dtype=np.uint64)[0]
    return int(state % np.uint64(899_999_999)) + 1


def pythia_settings(spec: ChunkSpec) -> list[str]:
    """All `readString` lines for one chunk."""
    if spec.process not in PROCESSES:
        raise ValueError(f"unknown process {spec.process!r}; known: {sorted(PROCESSES)}")
    if spec.isr_max not in ISR_MAX:
        raise ValueError(f"unknown generation.isr_max {spec.isr_max!r}; known: {sorted(ISR_MAX)}")
    if spec.isr_max == "scale" and not 0.25 <= spec.isr_max_fudge <= 2.0:
        raise ValueError(
            f"generation.isr_max_fudge {spec.isr_max_fudge} with isr_max 'scale' must lie in [0.25, 2] "
            "(Pythia's SpaceShower:pTmaxFudge)"
        )
    if spec.isr_veto_ht is not None and spec.isr_veto_ht <= 0:
        raise ValueError(f"generation.isr_veto_ht must be positive or null, got {spec.isr_veto_ht}")
    if spec.level not in LEVELS:
        raise ValueError(f"unknown generation level {spec.level!r}; known: {sorted(LEVELS)}")
    if not spec.qcd_fsr and spec.level != "parton":
        raise ValueError(
            f"generation.qcd_final_state_shower: false needs generation.level 'parton', not {spec.level!r} "
            "(hadronising partons that never showered is not physics)"
        )
    common = [
        f"Beams:eCM = {spec.sqrt_s_tev * 1000.0}",
        "Random:setSeed = on",
        f"Random:seed = {spec.seed}",
        "Next:numberCount = 0",
        "Next:numberShowEvent = 0",
        "Next:numberShowInfo = 0",
        "Next:numberShowProcess = 0",
        "Init:showProcesses = off",
        "Init:showMultipartonInteractions = off",
        "Init:showChangedSettings = off",
        "Init:showChangedParticleData = off",
    ]
    cuts = []
    if spec.process == "qqbar_Zgamma":
        cuts = [
            f"23:mMin = {spec.z_mass_min}",
            f"PhaseSpace:pTHatMin = {spec.pthat_min}",
            f"PhaseSpace:mHatMin = {spec.mhat_min}",
            f"PhaseSpace:mHatMax = {spec.mhat_max}",
            # 1: min(mT^2) = photon pT^2, Pythia's default; 2: geometric mean of the two mT^2,
            # MadGraph's default central scale for a heavy + massless pair. It is also the
            # starting scale of the initial-state shower (SpaceShower:pTmaxMatch = 0 with a
            # photon in the final state), so it sets the recoil pT(llg) of the background.
            f"SigmaProcess:factorScale2 = {spec.factor_scale2}",
        ]
    isr = [
        *ISR_MAX[spec.isr_max],
        *([f"SpaceShower:pTdampFudge = {spec.isr_damp_fudge}"] if spec.isr_max == "power_damped" else []),
        *([f"SpaceShower:pTmaxFudge = {spec.isr_max_fudge}"] if spec.isr_max == "scale" else []),
    ]
    if spec.process in BACKGROUND_ISR_PROCESSES:
        cuts += isr
    if spec.fsr_slice_pt is not None and not spec.fsr_slice_pt > 0.0:
        raise ValueError(f"generation.fsr_slice_pt must be positive or null, got {spec.fsr_slice_pt}")
    if spec.process in FSR_PROCESSES:
        # m(gamma*/Z) = m(llg) when the photon comes from a lepton: the mass range of the selection
        cuts += [f"23:mMin = {spec.mhat_min}"] + (
            [f"23:mMax = {spec.mhat_max}"] if spec.mhat_max > spec.mhat_min else []
        )
        if spec.process == "drellyan_jet_fsr":
            # the slice above drellyan_fsr's first emissions; its own shower starts at its p-hat_T (Pythia's
            # default for a final state with a parton)
            cuts += [f"PhaseSpace:pTHatMin = {spec.fsr_slice_pt}"]
        if spec.fsr is not None:
            cuts += [f"TimeShower:pTminChgL = {spec.fsr.lepton_qed_cutoff}"]
            if spec.fsr.enhance != 1.0:
                cuts += [
                    "Enhancements:doEnhance = on",
                    f"EnhancedSplittings:List = {{fsr:Q2QA={spec.fsr.enhance}}}",
                ]
    level = LEVELS[spec.level]
    if (
        spec.hadron_veto is not None
    ):  # hadronised by hand (forceHadronLevel) for the events that pass the veto
        level = [line.replace("HadronLevel:all = on", "HadronLevel:all = off") for line in level]
    shower = [] if spec.qcd_fsr else ["TimeShower:QCDshower = off"]
    native = spec.native_bias
    bias = native.pythia_lines() if native is not None else []
    return common + process_settings(spec) + cuts + level + shower + bias


def process_settings(spec: ChunkSpec) -> list[str]:
    """The process' lines of `PROCESSES`, with the Higgs mass of `spec` (unchanged at 125 GeV)."""
    lines = list(PROCESSES[spec.process])
    if spec.process in HIGGS_PROCESSES and spec.higgs_mass != SM_HIGGS_MASS:
        if not 0.0 < spec.higgs_mass < 1000.0:
            raise ValueError(f"generate.higgs_mass must lie in (0, 1000) GeV, got {spec.higgs_mass}")
        lines = [f"25:m0 = {spec.higgs_mass!r}" if ln.startswith("25:m0") else ln for ln in lines]
    return lines


#: Squared pT (GeV^2) below which a particle is not even read from the record: a little under
#: PARTICLE_PT_MIN^2, so that the exact cut (in numpy, `ChunkGenerator.batch`) sees every particle it keeps.
_PT2_PREFILTER = 0.999 * 0.5**2


#: Particle.isVisible() per PDG id (it depends on the particle species only), filled as ids are met.
_VISIBLE: dict[int, bool] = {}


def _event_particles(event) -> list[tuple[int, float, float, float, float]]:
    """Visible final-state particles of one Pythia event above the pT pre-filter (the one Python pass over the
    record).

    `Event.particles()` hands the record over in one call; the cheap tests (status, pT) come first, and
    visibility is looked up per species, so that a particle costs as few calls into Pythia as it can.
    """
    out = []
    visible = _VISIBLE
    for p in event.particles():
        if p.status() > 0 and p.pT2() > _PT2_PREFILTER:
            pid = p.id()
            seen = visible.get(pid)
            if seen is None:
                seen = visible[pid] = bool(p.isVisible())
            if seen:
                out.append((pid, p.px(), p.py(), p.pz(), p.e()))
    return out


#: Particles softer than this are dropped right after generation: the detector response uses
#: nothing below 0.5 GeV (isolation pool), and at hadron level this keeps the memory bounded.
PARTICLE_PT_MIN = 0.5
#: Events per batch handed to the detector response; fixed, so a seed fixes the random streams.
BATCH_SIZE = 5000
#: Events per call of Pythia's nextBatch (its arrays hold every particle of the record with all its
#: properties, about 0.2 MB per hadron-level event); does not change the events.
NEXT_BATCH_EVENTS = 500


def final_leptons_and_photons(
    record: Any,
) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """(pT, eta, phi) of the final charged leptons (e, mu) and of the final photons of a Pythia record."""
    leptons: list[tuple[float, float, float]] = []
    photons: list[tuple[float, float, float]] = []
    for particle in record.particles():
        if particle.status() <= 0:
            continue
        pid = abs(particle.id())
        if pid in (11, 13):
            leptons.append((particle.pT(), particle.eta(), particle.phi()))
        elif pid == 22:
            photons.append((particle.pT(), particle.eta(), particle.phi()))
    return leptons, photons


#: Status code of the parton emitted by an initial-state branching (Pythia's particle-status scheme).
ISR_EMITTED_STATUS = 43


def emitted_isr_parton(event: Any, size_old: int) -> Any | None:
    """The parton (status `ISR_EMITTED_STATUS`, one per branching) emitted by the initial-state branching
    that appended the entries from `size_old` on to `event`; None when there is none.

    Pythia's space-like shower appends it last, after the copies of the system (44) and the new mother
    (-41): the ISR veto looks at `event.back()` first, one call instead of one per new entry (an ISR veto
    call went from 11 to 2 microseconds, about a tenth of a background chunk's generation; the same parton
    as this search at every call of a Pythia run, tested), and searches here only when the last entry is
    another.
    """
    for i in range(size_old, event.size()):
        particle = event[i]
        if particle.status() == ISR_EMITTED_STATUS:
            return particle
    return None


def _bias_function(bias: Bias) -> Callable[[Any], float]:
    """`selection_bias` of one Pythia PhaseSpace in plain Python floats, with the bias' numbers bound as
    locals: Pythia calls it for every trial phase-space point (about 40 per accepted background event), so
    it makes no attribute look-ups and no numpy scalars."""
    ref, power = float(bias.pt_over_m_ref), float(bias.pt_over_m_power)
    peak, width, boost = float(bias.mass_peak), float(bias.mass_width), float(bias.mass_boost)
    floor, exp = BIAS_FLOOR, math.exp

    if bias.mass_variable not in ("mhat", "m3"):
        raise ValueError(f"Bias.mass_variable must be 'mhat' or 'm3', got {bias.mass_variable!r}")
    use_m3 = bias.mass_variable == "m3"

    def bias_of(phase_space: Any) -> float:
        mhat = phase_space.m3 if use_m3 else phase_space.mHat
        x = phase_space.pTHat() / mhat
        if x < floor:
            x = floor
        return (x / ref) ** power * (1.0 + boost * exp(-0.5 * ((mhat - peak) / width) ** 2))

    return bias_of


def _mass_shape_function(native: NativeBias) -> Callable[[float], float]:
    """`_mass_shape` of one m-hat in plain Python floats, with the bias' numbers bound as locals (the
    thinning hook calls it for every selected hard process; `_bias_function`'s reasons)."""
    power, mass_ref = float(native.bias.pt_over_m_power), float(native.mass_ref)
    peak, width, boost = (
        float(native.bias.mass_peak),
        float(native.bias.mass_width),
        float(native.bias.mass_boost),
    )
    exp = math.exp

    def shape_of(mhat: float) -> float:
        return (mass_ref / mhat) ** power * (1.0 + boost * exp(-0.5 * ((mhat - peak) / width) ** 2))

    return shape_of


def hard_process_summary(process: Any) -> tuple[float, list[float], list[float], list[float], list[float]]:
    """One pass over the final state of Pythia's process record: (HT/2, lepton pT, lepton eta, photon pT,
    photon eta), the e/mu leptons and photons in record order. HT/2 is MadGraph's default dynamic scale, half
    the sum of sqrt(m^2 + pT^2) over the final state."""
    ht = 0.0
    lepton_pt: list[float] = []
    lepton_eta: list[float] = []
    photon_pt: list[float] = []
    photon_eta: list[float] = []
    for particle in process.particles():
        if particle.status() <= 0:
            continue
        ht += particle.mT()
        pid = particle.idAbs()
        if pid == 11 or pid == 13:
            lepton_pt.append(particle.pT())
            lepton_eta.append(particle.eta())
        elif pid == 22:
            photon_pt.append(particle.pT())
            photon_eta.append(particle.eta())
    return 0.5 * ht, lepton_pt, lepton_eta, photon_pt, photon_eta


def rest_frame_half_ht(particles: Sequence[tuple[float, float, float, float, float]]) -> float:
    """HT/2 of `particles` (px, py, pz, E, m) in their common rest frame: half the sum of sqrt(m^2 + pT^2),
    pT transverse to the beam axis after the boost that brings their total momentum to rest.

    For the leptons of a gamma*/Z this is the HT/2 that the 2 -> 1 Drell-Yan process has before its shower
    (its gamma*/Z is at rest in the transverse plane), so the Drell-Yan + jet slice can apply the same limit
    to its p-hat_T that drellyan_fsr's ISR veto applies to its emissions (`generation.isr_veto_ht`).
    """
    px = sum(p[0] for p in particles)
    py = sum(p[1] for p in particles)
    pz = sum(p[2] for p in particles)
    e = sum(p[3] for p in particles)
    bx, by, bz = px / e, py / e, pz / e
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / math.sqrt(1.0 - b2)
    half = 0.0
    for qx, qy, qz, qe, m in particles:
        bp = bx * qx + by * qy + bz * qz
        along = ((gamma - 1.0) * bp / b2 - gamma * qe) if b2 > 0.0 else 0.0
        half += math.sqrt(m * m + (qx + along * bx) ** 2 + (qy + along * by) ** 2)
    return 0.5 * half


def slice_pthat_limit(process: Any, fudge: float) -> tuple[float, float]:
    """(p-hat_T, f HT/2) of a Drell-Yan + jet hard process: the gamma*/Z's pT (its leptons' sum) and the limit
    that drellyan_fsr's ISR veto would set, f times the leptons' HT/2 in the gamma*/Z rest frame
    (`rest_frame_half_ht`)."""
    leptons = [
        (q.px(), q.py(), q.pz(), q.e(), q.m())
        for q in process.particles()
        if q.status() > 0 and q.idAbs() in (11, 13)
    ]
    pthat = math.hypot(sum(q[0] for q in leptons), sum(q[1] for q in leptons))
    return pthat, fudge * rest_frame_half_ht(leptons)


def _user_hook(
    bias: Bias | None,
    veto: AcceptanceVeto | None,
    fsr: FsrFilter | None = None,
    isr_scale_fudge: float | None = None,
    drop_first_isr_above: float | None = None,
    slice_pthat_fudge: float | None = None,
    thinning: NativeBias | None = None,
    thinning_seed: int = 0,
) -> Any:
    """A Pythia UserHooks object: selection bias (`selection_bias`), acceptance veto, FSR filter and, with
    isr_scale_fudge f, the veto of initial-state emissions of the hard system above f HT/2 (`ISR_MAX` text).

    The Drell-Yan FSR slicing (`generation.fsr_slice_pt`): with drop_first_isr_above X (drellyan_fsr) the
    event is dropped when the first initial-state emission of the hard system that the ISR veto keeps is
    harder than X (pT of the emitted parton; the showers are pT-ordered, so it is the hardest); with
    slice_pthat_fudge f (drellyan_jet_fsr) the hard process is vetoed when its p-hat_T exceeds the limit of
    drellyan_fsr's ISR veto, f HT/2 of the leptons in the gamma*/Z frame (`slice_pthat_limit`). Together the
    two samples hold every Drell-Yan FSR event once: the slice the events whose first emission is harder than
    X, generated from the matrix elements that Pythia's matrix-element correction gives drellyan_fsr's first
    emission.

    With `thinning` (a `NativeBias`; `bias` is then None) the hook keeps each selected hard process with the
    thinning's probability t(m-hat), drawn from its own random stream (`thinning_seed`), and sums Pythia's
    weight 1 / b over the selected processes that reach it (`Hook.selected_weight_sum`), which the
    cross-section needs (`ChunkGenerator.info`).

    Pythia calls `biasSelectionBy` for every trial phase-space point (about 40 per accepted background
    event) and the ISR veto for every emission, so both stay in plain Python floats with local names
    (`bench/bench_generate.py` measures them against the earlier hooks; the events are bit-identical).
    """
    import random
    import pythia8mc

    bias_of = _bias_function(bias) if bias is not None else None
    veto_isr = isr_scale_fudge is not None
    fudge = float(isr_scale_fudge) if veto_isr else 0.0
    emitted = ISR_EMITTED_STATUS
    drop_above = math.inf if drop_first_isr_above is None else float(drop_first_isr_above)
    watch_first = drop_first_isr_above is not None
    slice_fudge = slice_pthat_fudge
    thin = thinning is not None
    if thin:
        if bias is not None:
            raise ValueError("a bias in the hook and an m-hat thinning (NativeBias) exclude each other")
        pythia_weight, mass_shape, thin_max = (
            thinning.pythia_weight,
            _mass_shape_function(thinning),
            thinning.thin_max,
        )
        uniform = random.Random(int(thinning_seed)).random  # Mersenne Twister: the same draws everywhere

    class Hook(pythia8mc.UserHooks):
        isr_limit = math.inf
        first_isr = True
        drop = False
        selected_weight_sum = 0.0

        def canVetoISREmission(self) -> bool:  # noqa: N802
            return veto_isr or watch_first

        def doVetoISREmission(self, size_old, event, i_sys) -> bool:  # noqa: N802
            if i_sys != 0:
                return False
            if event.size() <= size_old:
                return False
            particle = event.back()  # Pythia appends the emitted parton last (`emitted_isr_parton`)
            if particle.status() != emitted:
                particle = emitted_isr_parton(event, size_old)
                if particle is None:
                    return False
            pt = particle.pT()
            if pt > self.isr_limit:
                return True
            if self.first_isr:
                self.first_isr = False
                self.drop = pt > drop_above
            return False

        def canBiasSelection(self) -> bool:  # noqa: N802 (Pythia's names)
            return bias_of is not None

        def biasSelectionBy(self, sigma_process, phase_space, in_event) -> float:  # noqa: N802
            return bias_of(phase_space)

        def canVetoProcessLevel(self) -> bool:  # noqa: N802
            return veto is not None or veto_isr or watch_first or slice_fudge is not None or thin

        def doVetoProcessLevel(self, process) -> bool:  # noqa: N802
            self.first_isr, self.drop = True, False
            if thin:  # the 2 -> 2 process' outgoing pair: entries 5 and 6 of the process record
                a = process[5]
                self.selected_weight_sum += pythia_weight(a.pT())
                if uniform() * thin_max >= mass_shape((a.p() + process[6].p()).mCalc()):
                    return True
            if slice_fudge is not None:
                pthat, limit = slice_pthat_limit(process, slice_fudge)
                if pthat > limit:
                    return True
            if veto is None and not veto_isr:
                return False
            half, lepton_pt, lepton_eta, photon_pt, photon_eta = hard_process_summary(process)
            if veto_isr:
                self.isr_limit = fudge * half
            return veto is not None and not veto.passes(lepton_pt, lepton_eta, photon_pt, photon_eta)

        def canVetoPartonLevel(self) -> bool:  # noqa: N802
            return fsr is not None or watch_first

        def doVetoPartonLevel(self, event) -> bool:  # noqa: N802
            return self.drop or (fsr is not None and not fsr.passes(event))

    return Hook()


@functools.cache
def _blank_pythia() -> Any:
    """A Pythia instance as constructed (default settings and particle data, never changed or initialised),
    made once per process: a generator copies its databases instead of reading them again."""
    import pythia8mc

    return pythia8mc.Pythia("", False)


class ChunkGenerator:
    """One initialised Pythia instance that makes the events of a chunk batch by batch."""

    def __init__(self, spec: ChunkSpec, progress: bool = True) -> None:
        import pythia8mc  # imported here so that the rest of the library works without the generator

        self.spec = spec
        # a copy of a pristine instance's settings and particle data: 6 ms instead of the 100 ms in which a
        # new Pythia reads its XML database (five strata a chunk)
        blank = _blank_pythia()
        self.pythia = pythia8mc.Pythia(blank.settings, blank.particleData, False)
        for line in pythia_settings(spec):
            if not self.pythia.readString(line):
                raise RuntimeError(f"Pythia refused the setting {line!r}")
        #: seconds spent in Pythia's next() and forceHadronLevel() ("pythia", the user hooks it calls
        #: included), in the acceptance check before hadronisation ("hadron_veto") and in reading the
        #: record ("extract")
        self.seconds = {"pythia": 0.0, "hadron_veto": 0.0, "extract": 0.0}
        self.n_hadron_vetoed = 0
        self._visible_ids: dict[int, bool] = {}
        self.hook = None
        #: the bias as Pythia's p-hat_T bias and the hook's m-hat thinning (None: in the hook, or no bias)
        self.native = spec.native_bias
        is_slice = spec.process == "drellyan_jet_fsr"
        if (
            spec.bias is not None
            or spec.veto is not None
            or spec.fsr is not None
            or spec.isr_veto_ht is not None
            or spec.fsr_slice_pt is not None
        ):
            self.hook = _user_hook(
                spec.bias if self.native is None else None,
                spec.veto,
                spec.fsr,
                None if is_slice else spec.isr_veto_ht,
                drop_first_isr_above=spec.fsr_slice_pt if spec.process == "drellyan_fsr" else None,
                slice_pthat_fudge=spec.isr_veto_ht if is_slice else None,
                thinning=self.native,
                thinning_seed=thinning_seed(spec.seed),
            )  # kept alive here: Pythia holds a raw pointer
            self.pythia.setUserHooksPtr(self.hook)
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process {spec.process!r}")
        self.n_failed = 0
        self.bar = tqdm(
            total=spec.n_events, desc=f"pythia {spec.process}", disable=not progress, mininterval=5
        )

    def batch(self, n_events: int) -> tuple[ak.Array, np.ndarray]:
        """The next `n_events` events: jagged particles (pid, px, py, pz, E) with pT > PARTICLE_PT_MIN,
        weights.

        Events come from Pythia's `nextBatch` (the records converted to arrays in C++, then filtered in
        numpy), unless they are hadronised by hand after the acceptance check (`ChunkSpec.hadron_veto`),
        which needs the event-by-event loop. Both paths give the same events for the same seed.
        """
        if self.spec.hadron_veto is None:
            return self._batch_columnar(n_events)
        return self._batch_event_loop(n_events)

    def _batch_columnar(self, n_events: int) -> tuple[ak.Array, np.ndarray]:
        """`batch` through Pythia's nextBatch, at most NEXT_BATCH_EVENTS records at a time (memory)."""
        seconds = self.seconds
        pieces: list[ak.Array] = []
        weights: list[np.ndarray] = []
        done = 0
        while done < n_events:
            want = min(NEXT_BATCH_EVENTS, n_events - done)
            t0 = time.perf_counter()
            events = self.pythia.nextBatch(want)  # errorMode "skip": an event Pythia fails on is left out
            t1 = time.perf_counter()
            seconds["pythia"] += t1 - t0
            self.n_failed += want - len(events)
            if self.n_failed > max(100, self.spec.n_events // 10):
                raise RuntimeError(
                    f"Pythia failed {self.n_failed} times for {self.spec.process!r}; giving up"
                )
            particles, w = self._columns(events)
            pieces.append(particles)
            weights.append(w)
            done += len(events)
            self.bar.update(len(events))
            seconds["extract"] += time.perf_counter() - t1
        return ak.concatenate(pieces) if len(pieces) > 1 else pieces[0], np.concatenate(weights)

    def _columns(self, events: ak.Array) -> tuple[ak.Array, np.ndarray]:
        """Visible final particles with pT > PARTICLE_PT_MIN and the weights of a nextBatch array."""
        prt = events.prt
        counts = ak.to_numpy(ak.num(prt))
        flat = ak.flatten(prt)
        pid = ak.to_numpy(flat.id)
        mom = flat.p
        px, py = ak.to_numpy(mom.px), ak.to_numpy(mom.py)
        keep = (ak.to_numpy(flat.status) > 0) & (np.hypot(px, py) > PARTICLE_PT_MIN) & self._visible(pid)
        event_of_row = np.repeat(np.arange(len(counts)), counts)
        counts = np.bincount(event_of_row[keep], minlength=len(counts))
        fields = {
            "pid": pid[keep].astype(np.int32),
            "px": px[keep],
            "py": py[keep],
            "pz": ak.to_numpy(mom.pz)[keep],
            "E": ak.to_numpy(mom.e)[keep],
        }
        info = events.info
        weights = ak.to_numpy(ak.firsts(info.weights)).astype(np.float64)
        if self.native is not None:  # Pythia's weight 1 / b over the thinning's t: thin_max / selection_bias
            pthat = np.sqrt(ak.to_numpy(info.pT2Hat).astype(np.float64))
            weights = self.native.weights(pthat, ak.to_numpy(info.mHat))
        elif (
            self.spec.bias is not None
        ):  # event by event, as numpy scalars: the same bits as before (see tests)
            pthat = np.sqrt(ak.to_numpy(info.pT2Hat)).tolist()
            mhat = ak.to_numpy(info.mHat).tolist()
            if self.spec.bias.mass_variable == "m3":
                mhat = self._m3(info).tolist()
            weights = weights / np.array(
                [selection_bias(a, m, self.spec.bias) for a, m in zip(pthat, mhat)], np.float64
            )
        return ak.unflatten(ak.zip(fields), counts), weights

    @staticmethod
    def _m3(info: ak.Array) -> np.ndarray:
        """Mass of the first outgoing particle of 2 -> 2 hard processes from nextBatch's info,
        sqrt(s + t + u): Pythia's t-hat and u-hat of gamma*/Z + parton are those of a massless outgoing parton
        (its mass is given after; checked against the gamma*/Z of the record, b quarks included, in the
        tests)."""
        stu = ak.to_numpy(info.sHat) + ak.to_numpy(info.tHat) + ak.to_numpy(info.uHat)
        return np.sqrt(stu)

    def _visible(self, pid: np.ndarray) -> np.ndarray:
        """Pythia's isVisible() of each PDG id (per species, cached)."""
        unique = np.unique(pid)
        for code in unique.tolist():
            if code not in self._visible_ids:
                self._visible_ids[code] = bool(self.pythia.particleData.isVisible(code))
        visible = np.array([c for c in unique.tolist() if self._visible_ids[c]], dtype=pid.dtype)
        return np.isin(pid, visible)

    def _batch_event_loop(self, n_events: int) -> tuple[ak.Array, np.ndarray]:
        """`batch` event by event (the hadronisation of the events that pass `ChunkSpec.hadron_veto`)."""
        counts = np.zeros(n_events, dtype=np.int64)
        weights = np.zeros(n_events, dtype=np.float64)
        rows: list[tuple[int, float, float, float, float]] = []
        hadron_veto = self.spec.hadron_veto
        seconds = self.seconds
        i = 0
        while i < n_events:
            t0 = time.perf_counter()
            ok = self.pythia.next()
            t1 = time.perf_counter()
            seconds["pythia"] += t1 - t0
            if ok and hadron_veto is not None:
                passed = hadron_veto.passes(self.pythia.event)
                t2 = time.perf_counter()
                seconds["hadron_veto"] += t2 - t1
                if passed:
                    ok = self.pythia.forceHadronLevel(False)  # the junctions are those of this event
                    t1 = time.perf_counter()
                    seconds["pythia"] += t1 - t2
                else:
                    self.n_hadron_vetoed += 1
                    t1 = t2
            if not ok:
                self.n_failed += 1
                if self.n_failed > max(100, self.spec.n_events // 10):
                    raise RuntimeError(
                        f"Pythia failed {self.n_failed} times for {self.spec.process!r}; giving up"
                    )
                continue
            # an event vetoed before hadronisation keeps its weight (it counts as generated) but no particles
            particles = _event_particles(self.pythia.event) if hadron_veto is None or passed else []
            rows.extend(particles)
            counts[i] = len(particles)
            info = self.pythia.infoPython()
            weights[i] = info.weight()
            if self.native is not None:
                weights[i] = self.native.weights(info.pTHat(), info.mHat())
            elif self.spec.bias is not None:
                mass = info.m3Hat() if self.spec.bias.mass_variable == "m3" else info.mHat()
                weights[i] /= selection_bias(info.pTHat(), mass, self.spec.bias)
            i += 1
            self.bar.update(1)
            seconds["extract"] += time.perf_counter() - t1
        flat = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        keep = np.hypot(flat[:, 1], flat[:, 2]) > PARTICLE_PT_MIN
        event_of_row = np.repeat(np.arange(n_events), counts)
        counts = np.bincount(event_of_row[keep], minlength=n_events)
        flat = flat[keep]
        fields = {
            "pid": flat[:, 0].astype(np.int32),
            "px": flat[:, 1],
            "py": flat[:, 2],
            "pz": flat[:, 3],
            "E": flat[:, 4],
        }
        return ak.unflatten(ak.zip(fields), counts), weights

    def final_weights(self, weights: np.ndarray) -> np.ndarray:
        """The events' weights once the chunk is made, from those `batch` returned (unchanged here)."""
        return weights

    def info(self, sum_weights: float) -> ChunkInfo:
        """Metadata once all events are made: generated events, sum of weights, cross-section."""
        self.bar.close()
        info = self.pythia.infoPython()
        # with a selection bias Pythia estimates sigma x <bias>; the mean weight <1/bias> undoes it. With
        # enhanced emissions and the FSR filter, Pythia's sigma is that of the kept events counted
        # unweighted, and the mean kept weight turns it into their weighted cross-section.
        weighted = self.spec.bias is not None or self.spec.fsr is not None
        unbias = float(sum_weights) / self.spec.n_events if weighted else 1.0
        if self.native is not None:
            # Pythia's sigma with its own bias is the unbiased sigma S of the selected processes times the
            # fraction it accepted, n_acc / n_sel; the thinning and the acceptance veto keep the events
            # sum(w) / sum_selected(1 / b) of S (`NativeBias`)
            n_sel, n_acc = info.nSelected(), info.nAccepted()
            selected = self.hook.selected_weight_sum
            unbias = (n_sel / n_acc) * float(sum_weights) / selected if n_acc and selected > 0 else 0.0
        meta = ChunkInfo(
            n_generated=self.spec.n_events,
            sum_weights=float(sum_weights),
            sigma_gen_pb=float(info.sigmaGen()) * PB_PER_MB * unbias,
            sigma_err_pb=float(info.sigmaErr()) * PB_PER_MB * unbias,
        )
        log.info(
            "generated %d %s events (%d failed), sigma_gen = %.4g +- %.2g pb",
            self.spec.n_events,
            self.spec.process,
            self.n_failed,
            meta.sigma_gen_pb,
            meta.sigma_err_pb,
        )
        return meta


class StratifiedGenerator:
    """A chunk made in strata of m-hat (`ChunkSpec.mhat_strata`): one `ChunkGenerator` per stratum, the strata
    one after the other (only one Pythia alive at a time), each with its share of the chunk's events, its own
    seed (`stratum_seed`) and its m-hat range as Pythia's PhaseSpace:mHatMin / mHatMax.

    Within a stratum the events follow the chunk's law (the bias as `NativeBias`, with the stratum's own
    thinning maximum, which keeps most selected processes where the bias' m-hat factor changes little); the
    fractions set how many MC events each stratum gets. Each stratum's weights are scaled to its own
    cross-section sigma_k (`final_weights`): an event of stratum k weighs n sigma_k / sigma (w / sum_k w), so
    the chunk's weights sum to n, and every distribution, the cross-section sigma = sum_k sigma_k included,
    is that of the unstratified chunk whatever the fractions. Events come in stratum order (nothing downstream
    reads the order: the splits hash the event number).
    """

    def __init__(self, spec: ChunkSpec, progress: bool = True) -> None:
        if not spec.mhat_strata:
            raise ValueError("StratifiedGenerator needs ChunkSpec.mhat_strata")
        import dataclasses

        self.spec = spec
        self.counts = stratum_counts(spec.n_events, [f for _, _, f in spec.mhat_strata])
        self.specs = [
            dataclasses.replace(
                spec,
                n_events=n,
                seed=stratum_seed(spec.seed, k),
                mhat_min=lo,
                mhat_max=hi,
                mhat_strata=None,
            )
            for k, ((lo, hi, _), n) in enumerate(zip(spec.mhat_strata, self.counts))
        ]
        self._current: ChunkGenerator | None = None
        self._stratum = 0
        self._made = 0  # events of the current stratum made so far
        self._sums = [0.0] * len(self.counts)  # sum of each stratum's weights from `batch`
        self.metas: list[ChunkInfo] = []
        self._seconds = {"pythia": 0.0, "hadron_veto": 0.0, "extract": 0.0}
        self._failed = self._vetoed = 0
        self.bar = tqdm(
            total=spec.n_events, desc=f"pythia {spec.process}", disable=not progress, mininterval=5
        )

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds in Pythia, the acceptance before hadronisation and the record extraction, all strata."""
        now = self._current.seconds if self._current is not None else {}
        return {k: v + now.get(k, 0.0) for k, v in self._seconds.items()}

    @property
    def n_failed(self) -> int:
        return self._failed + (self._current.n_failed if self._current is not None else 0)

    @property
    def n_hadron_vetoed(self) -> int:
        return self._vetoed + (self._current.n_hadron_vetoed if self._current is not None else 0)

    def batch(self, n_events: int) -> tuple[ak.Array, np.ndarray]:
        """The next `n_events` events of the chunk (stratum after stratum) and their weights within their
        stratum."""
        pieces: list[ak.Array] = []
        weights: list[np.ndarray] = []
        need = n_events
        while need > 0:
            if self._stratum >= len(self.counts):
                raise ValueError(f"the chunk has {self.spec.n_events} events; asked for more")
            if self._current is None:  # Pythia's set-up of the stratum (about 0.25 s) counts as Pythia's time
                t0 = time.perf_counter()
                sub = self.specs[self._stratum]
                try:
                    self._current = ChunkGenerator(sub, progress=False)
                except RuntimeError as err:
                    raise RuntimeError(
                        f"m-hat stratum {sub.mhat_min:g}-{sub.mhat_max:g} GeV (generation.mhat_strata) of "
                        f"{self.spec.process!r}: {err}. A stratum must hold phase space for the generator "
                        f"cuts (p-hat_T > {sub.pthat_min:g} GeV, gamma*/Z mass > {sub.z_mass_min:g} GeV): "
                        "move generation.mhat_strata.edges"
                    ) from err
                self._seconds["pythia"] += time.perf_counter() - t0
                self._made = 0
            take = min(need, self.counts[self._stratum] - self._made)
            particles, w = self._current.batch(take)
            pieces.append(particles)
            weights.append(w)
            self._sums[self._stratum] += float(w.sum())
            self._made += take
            need -= take
            self.bar.update(take)
            if self._made == self.counts[self._stratum]:
                self._close_stratum()
        return (ak.concatenate(pieces) if len(pieces) > 1 else pieces[0]), np.concatenate(weights)

    def _close_stratum(self) -> None:
        """Keep the finished stratum's metadata and counters, and let its Pythia go."""
        gen = self._current
        assert gen is not None
        self.metas.append(gen.info(self._sums[self._stratum]))
        for k, v in gen.seconds.items():
            self._seconds[k] += v
        self._failed += gen.n_failed
        self._vetoed += gen.n_hadron_vetoed
        self._current = None
        self._stratum += 1

    def _sigmas(self) -> np.ndarray:
        if len(self.metas) != len(self.counts):
            raise RuntimeError(
                f"{len(self.metas)} of {len(self.counts)} m-hat strata made: the chunk is not complete"
            )
        return np.array([m.sigma_gen_pb for m in self.metas], np.float64)

    def final_weights(self, weights: np.ndarray) -> np.ndarray:
        """Weights scaled stratum by stratum to its cross-section: n sigma_k / sigma x w / sum_k w."""
        sigma = self._sigmas()
        if len(weights) != self.spec.n_events:
            raise ValueError(f"{len(weights)} weights for a chunk of {self.spec.n_events} events")
        scale = self.spec.n_events * (sigma / sigma.sum()) / np.array(self._sums, np.float64)
        return np.asarray(weights, np.float64) * np.repeat(scale, self.counts)

    def info(self, sum_weights: float) -> ChunkInfo:
        """Metadata once all strata are made: the cross-section is the sum of the strata's."""
        self.bar.close()
        sigma = self._sigmas()
        meta = ChunkInfo(
            n_generated=self.spec.n_events,
            sum_weights=float(sum_weights),
            sigma_gen_pb=float(sigma.sum()),
            sigma_err_pb=float(np.sqrt(np.sum(np.array([m.sigma_err_pb for m in self.metas]) ** 2))),
        )
        log.info(
            "generated %d %s events in %d m-hat strata (%s events; sigma %s pb), sigma_gen = %.4g +- %.2g pb",
            self.spec.n_events,
            self.spec.process,
            len(self.counts),
            "/".join(str(c) for c in self.counts),
            "/".join(f"{s:.3g}" for s in sigma),
            meta.sigma_gen_pb,
            meta.sigma_err_pb,
        )
        return meta


def make_generator(spec: ChunkSpec, progress: bool = True) -> ChunkGenerator | StratifiedGenerator:
    """The generator of a chunk: in m-hat strata when the spec has them, else one Pythia run."""
    return StratifiedGenerator(spec, progress) if spec.mhat_strata else ChunkGenerator(spec, progress)


def generate_chunk(spec: ChunkSpec, progress: bool = True) -> tuple[ak.Array, np.ndarray, ChunkInfo]:
    """All events of a chunk at once: particles, generator weights and the chunk metadata."""
    gen = make_generator(spec, progress)
    particles, weights = gen.batch(spec.n_events)
    weights = gen.final_weights(weights)
    return particles, weights, gen.info(weights.sum())


def detector_seed(seed: int, offset: int) -> np.random.SeedSequence:
    """Random stream of the detector response of a chunk, independent of Pythia's."""
    return np.random.SeedSequence([int(seed), int(offset)])


#: Third entropy word of the jets' random stream (`jet_seed`): a stream apart from `detector_seed`'s.
JET_STREAM = 1


def jet_seed(seed: int, offset: int) -> np.random.SeedSequence:
    """Random stream of the jet smearing of a chunk, independent of Pythia's and of `detector_seed`'s (the
    leptons' and photons'), so that adding jets leaves every other collection bit-identical."""
    return np.random.SeedSequence([int(seed), int(offset), JET_STREAM])


def nanoaod_trees(
    objects: dict[str, ak.Array], weights: ak.Array, meta: ChunkInfo, spec: ChunkSpec, chunk: int
) -> dict[str, dict[str, object]]:
    """The NanoAOD-like `Events` and `Runs` trees of one chunk."""
    n = len(weights)
    events: dict[str, object] = {name: coll for name, coll in objects.items()}
    events["genWeight"] = np.asarray(weights, dtype=np.float64)
    events["event"] = np.arange(n, dtype=np.int64)
    events["chunk"] = np.full(n, chunk, dtype=np.int32)
    runs = {
        "genEventCount": np.array([meta.n_generated], dtype=np.int64),
        "genEventSumw": np.array([meta.sum_weights]),
        "sigmaGen_pb": np.array([meta.sigma_gen_pb]),
        "sigmaErr_pb": np.array([meta.sigma_err_pb]),
        "seed": np.array([spec.seed], dtype=np.int64),
        "partonLevelOnly": np.array([spec.level == "parton"]),
    }
    return {"Events": events, "Runs": runs}


def simulate_chunk(
    spec: ChunkSpec, detector_cfg: dict, chunk: int, progress: bool = True
) -> dict[str, dict[str, object]]:
    """Generate one chunk batch by batch, apply the detector response and return its n-tuple trees."""
    from hzg.data import detector

    gen = make_generator(spec, progress)
    rng = np.random.default_rng(detector_seed(spec.seed, detector_cfg["seed_offset"]))
    jet_cfg = detector_cfg.get("jet")
    jet_rng = np.random.default_rng(jet_seed(spec.seed, detector_cfg["seed_offset"]))
    batches: list[dict[str, ak.Array]] = []
    weights: list[np.ndarray] = []
    detector_s = 0.0
    for start in range(0, spec.n_events, BATCH_SIZE):
        particles, w = gen.batch(min(BATCH_SIZE, spec.n_events - start))
        t0 = time.perf_counter()
        batches.append(detector.reconstruct(particles, detector_cfg, rng))
        if jet_cfg is not None:
            batches[-1][detector.JET_COLLECTION] = detector.reconstruct_jets(particles, jet_cfg, jet_rng)
        detector_s += time.perf_counter() - t0
        weights.append(w)
    log.info(
        "seconds: Pythia %.1f (user hooks included), acceptance before hadronisation %.1f, "
        "record extraction %.1f, "
        "detector %.1f; %d events vetoed before hadronisation",
        gen.seconds["pythia"],
        gen.seconds["hadron_veto"],
        gen.seconds["extract"],
        detector_s,
        gen.n_hadron_vetoed,
    )
    all_weights = gen.final_weights(np.concatenate(weights))
    meta = gen.info(all_weights.sum())
    names = list(detector.COLLECTIONS) + ([detector.JET_COLLECTION] if jet_cfg is not None else [])
    objects = {name: ak.concatenate([b[name] for b in batches]) for name in names}
    for name, coll in objects.items():
        log.info("%s: %.3f per event after the detector response", name, float(ak.mean(ak.num(coll))))
    return nanoaod_trees(objects, all_weights, meta, spec, chunk)
