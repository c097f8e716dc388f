"""Monte Carlo generation with Pythia 8: hard process, shower and the final-state particle record.

The generator produces, per chunk, the visible final-state particles of every event as jagged
awkward arrays; `hzg.data.detector` turns them into reconstructed objects.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import ArrayLike

import awkward as ak
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

PB_PER_MB = 1.0e9

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

        Radiation only lowers a lepton's pT, so a lepton cut on the hard process looser than the
        selection's never removes an event that the selection would keep.
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
    bias: Bias | None = None
    veto: AcceptanceVeto | None = None
    fsr: FsrFilter | None = None


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


#: Where the initial-state shower of the background starts (`generation.isr_max`):
#: "factorization": at the factorisation scale, Pythia's default for a final state with a photon and
#: the behaviour of an LHE event showered from its SCALUP; "power": at the kinematic limit (as the
#: signal's gg -> H, which has no final-state parton); "power_damped": at the kinematic limit with
#: the damping k^2 Q^2 / (pT^2 + k^2 Q^2) of Corke and Sjostrand (EPJC 69 (2010) 1), which follows the
#: real-emission matrix element (here q qbar -> Z gamma g, q g -> Z gamma q) between the two; k is
#: `generation.isr_damp_fudge` (SpaceShower:pTdampFudge) and Q the factorisation scale.
ISR_MAX: dict[str, list[str]] = {
    "factorization": ["SpaceShower:pTmaxMatch = 0", "SpaceShower:pTdampMatch = 0"],
    "power": ["SpaceShower:pTmaxMatch = 2", "SpaceShower:pTdampMatch = 0"],
    "power_damped": ["SpaceShower:pTmaxMatch = 2", "SpaceShower:pTdampMatch = 1"],
}

#: Processes that the background generator settings (cuts, scale, veto, bias) apply to.
BACKGROUND_PROCESSES = ("qqbar_Zgamma",)
#: Processes whose hard process gets the acceptance veto (leptons only for Drell-Yan).
VETOED_PROCESSES = ("qqbar_Zgamma", "drellyan_fsr")


def chunk_spec(
    process: str, n_events: int, seed: int, generation: Mapping[str, Any], sqrt_s_tev: float
) -> ChunkSpec:
    """The ChunkSpec of one chunk from the config's `generation` section (optional keys: off)."""
    background = process in BACKGROUND_PROCESSES
    veto = (
        dict(generation["acceptance_veto"])
        if process in VETOED_PROCESSES and generation.get("acceptance_veto")
        else None
    )
    if veto is not None and process != "qqbar_Zgamma":
        veto["require_photon"] = False
    bias = generation.get("bias") if background else None
    fsr = generation.get("fsr") if process == "drellyan_fsr" else None
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
        isr_max=str(generation.get("isr_max", "factorization")) if background else "factorization",
        isr_damp_fudge=float(generation.get("isr_damp_fudge", 1.0)),
        veto=AcceptanceVeto(**veto) if veto else None,
        bias=Bias(**bias) if bias else None,
        fsr=FsrFilter(**fsr) if fsr else None,
    )


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
    if spec.level not in LEVELS:
        raise ValueError(f"unknown generation level {spec.level!r}; known: {sorted(LEVELS)}")
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
            *ISR_MAX[spec.isr_max],
            *([f"SpaceShower:pTdampFudge = {spec.isr_damp_fudge}"] if spec.isr_max == "power_damped" else []),
        ]
    if spec.process == "drellyan_fsr":
        # m(gamma*/Z) = m(llg) when the photon comes from a lepton: the mass range of the selection
        cuts = [f"23:mMin = {spec.mhat_min}"] + (
            [f"23:mMax = {spec.mhat_max}"] if spec.mhat_max > spec.mhat_min else []
        )
        if spec.fsr is not None:
            cuts += [f"TimeShower:pTminChgL = {spec.fsr.lepton_qed_cutoff}"]
            if spec.fsr.enhance != 1.0:
                cuts += [
                    "Enhancements:doEnhance = on",
                    f"EnhancedSplittings:List = {{fsr:Q2QA={spec.fsr.enhance}}}",
                ]
    return common + PROCESSES[spec.process] + cuts + LEVELS[spec.level]


def _event_particles(event) -> list[tuple[int, float, float, float, float]]:
    """Visible final-state particles of one Pythia event (the one Python pass over the record)."""
    return [(p.id(), p.px(), p.py(), p.pz(), p.e()) for p in event if p.isFinal() and p.isVisible()]


#: Particles softer than this are dropped right after generation: the detector response uses
#: nothing below 0.5 GeV (isolation pool), and at hadron level this keeps the memory bounded.
PARTICLE_PT_MIN = 0.5
#: Events per batch handed to the detector response; fixed, so a seed fixes the random streams.
BATCH_SIZE = 5000


def final_leptons_and_photons(
    record: Any,
) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """(pT, eta, phi) of the final charged leptons (e, mu) and of the final photons of a Pythia record."""
    leptons: list[tuple[float, float, float]] = []
    photons: list[tuple[float, float, float]] = []
    for i in range(record.size()):
        particle = record[i]
        if not particle.isFinal():
            continue
        pid = abs(particle.id())
        if pid in (11, 13):
            leptons.append((particle.pT(), particle.eta(), particle.phi()))
        elif pid == 22:
            photons.append((particle.pT(), particle.eta(), particle.phi()))
    return leptons, photons


def _hard_objects(process: Any) -> tuple[list[float], list[float], list[float], list[float]]:
    """pT and eta of the final-state charged leptons (e, mu) and photons of Pythia's process record."""
    leptons, photons = final_leptons_and_photons(process)
    return [p[0] for p in leptons], [p[1] for p in leptons], [p[0] for p in photons], [p[1] for p in photons]


def _user_hook(bias: Bias | None, veto: AcceptanceVeto | None, fsr: FsrFilter | None = None) -> Any:
    """A Pythia UserHooks object: selection bias (`selection_bias`), acceptance veto, FSR filter."""
    import pythia8mc

    class Hook(pythia8mc.UserHooks):
        def canBiasSelection(self) -> bool:  # noqa: N802 (Pythia's names)
            return bias is not None

        def biasSelectionBy(self, sigma_process, phase_space, in_event) -> float:  # noqa: N802
            return float(selection_bias(phase_space.pTHat(), phase_space.mHat, bias))

        def canVetoProcessLevel(self) -> bool:  # noqa: N802
            return veto is not None

        def doVetoProcessLevel(self, process) -> bool:  # noqa: N802
            return not veto.passes(*_hard_objects(process))

        def canVetoPartonLevel(self) -> bool:  # noqa: N802
            return fsr is not None

        def doVetoPartonLevel(self, event) -> bool:  # noqa: N802
            return not fsr.passes(event)

    return Hook()


class ChunkGenerator:
    """One initialised Pythia instance that makes the events of a chunk batch by batch."""

    def __init__(self, spec: ChunkSpec, progress: bool = True) -> None:
        import pythia8mc  # imported here so that the rest of the library works without the generator

        self.spec = spec
        self.pythia = pythia8mc.Pythia("", False)
        for line in pythia_settings(spec):
            if not self.pythia.readString(line):
                raise RuntimeError(f"Pythia refused the setting {line!r}")
        self.hook = None
        if spec.bias is not None or spec.veto is not None or spec.fsr is not None:
            self.hook = _user_hook(
                spec.bias, spec.veto, spec.fsr
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
        weights."""
        counts = np.zeros(n_events, dtype=np.int64)
        weights = np.zeros(n_events, dtype=np.float64)
        rows: list[tuple[int, float, float, float, float]] = []
        i = 0
        while i < n_events:
            if not self.pythia.next():
                self.n_failed += 1
                if self.n_failed > max(100, self.spec.n_events // 10):
                    raise RuntimeError(
                        f"Pythia failed {self.n_failed} times for {self.spec.process!r}; giving up"
                    )
                continue
            particles = _event_particles(self.pythia.event)
            rows.extend(particles)
            counts[i] = len(particles)
            info = self.pythia.infoPython()
            weights[i] = info.weight()
            if self.spec.bias is not None:
                weights[i] /= selection_bias(info.pTHat(), info.mHat(), self.spec.bias)
            i += 1
            self.bar.update(1)
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

    def info(self, sum_weights: float) -> ChunkInfo:
        """Metadata once all events are made: generated events, sum of weights, cross-section."""
        self.bar.close()
        info = self.pythia.infoPython()
        # with a selection bias Pythia estimates sigma x <bias>; the mean weight <1/bias> undoes it. With
        # enhanced emissions and the FSR filter, Pythia's sigma is that of the kept events counted
        # unweighted, and the mean kept weight turns it into their weighted cross-section.
        weighted = self.spec.bias is not None or self.spec.fsr is not None
        unbias = float(sum_weights) / self.spec.n_events if weighted else 1.0
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


def generate_chunk(spec: ChunkSpec, progress: bool = True) -> tuple[ak.Array, np.ndarray, ChunkInfo]:
    """All events of a chunk at once: particles, generator weights and the chunk metadata."""
    gen = ChunkGenerator(spec, progress)
    particles, weights = gen.batch(spec.n_events)
    return particles, weights, gen.info(weights.sum())


def detector_seed(seed: int, offset: int) -> np.random.SeedSequence:
    """Random stream of the detector response of a chunk, independent of Pythia's."""
    return np.random.SeedSequence([int(seed), int(offset)])


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

    gen = ChunkGenerator(spec, progress)
    rng = np.random.default_rng(detector_seed(spec.seed, detector_cfg["seed_offset"]))
    batches: list[dict[str, ak.Array]] = []
    weights: list[np.ndarray] = []
    for start in range(0, spec.n_events, BATCH_SIZE):
        particles, w = gen.batch(min(BATCH_SIZE, spec.n_events - start))
        batches.append(detector.reconstruct(particles, detector_cfg, rng))
        weights.append(w)
    all_weights = np.concatenate(weights)
    meta = gen.info(all_weights.sum())
    objects = {name: ak.concatenate([b[name] for b in batches]) for name in detector.COLLECTIONS}
    for name, coll in objects.items():
        log.info("%s: %.3f per event after the detector response", name, float(ak.mean(ak.num(coll))))
    return nanoaod_trees(objects, all_weights, meta, spec, chunk)
