"""Monte Carlo generation with Pythia 8: hard process, shower and the final-state particle record.

The generator produces, per chunk, the visible final-state particles of every event as jagged
awkward arrays; `hzg.detector` turns them into reconstructed objects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

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
}

#: Switches of the generation level. "parton": no multi-parton interactions and no
#: hadronisation, final state = leptons, photons and partons of the hard process and showers;
#: "hadron": the full event with underlying event and hadrons (about 10x slower).
LEVELS: dict[str, list[str]] = {
    "parton": ["PartonLevel:MPI = off", "HadronLevel:all = off"],
    "hadron": ["PartonLevel:MPI = on", "HadronLevel:all = on"],
}


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


@dataclass(frozen=True)
class ChunkInfo:
    """Per-chunk metadata written beside the events."""

    n_generated: int
    sum_weights: float
    sigma_gen_pb: float
    sigma_err_pb: float


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


class ChunkGenerator:
    """One initialised Pythia instance that makes the events of a chunk batch by batch."""

    def __init__(self, spec: ChunkSpec, progress: bool = True) -> None:
        import pythia8mc  # imported here so that the rest of the library works without the generator

        self.spec = spec
        self.pythia = pythia8mc.Pythia("", False)
        for line in pythia_settings(spec):
            if not self.pythia.readString(line):
                raise RuntimeError(f"Pythia refused the setting {line!r}")
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process {spec.process!r}")
        self.n_failed = 0
        self.bar = tqdm(total=spec.n_events, desc=f"pythia {spec.process}", disable=not progress, mininterval=5)

    def batch(self, n_events: int) -> tuple[ak.Array, np.ndarray]:
        """The next `n_events` events: jagged particles (pid, px, py, pz, E) with pT > PARTICLE_PT_MIN, weights."""
        counts = np.zeros(n_events, dtype=np.int64)
        weights = np.zeros(n_events, dtype=np.float64)
        rows: list[tuple[int, float, float, float, float]] = []
        i = 0
        while i < n_events:
            if not self.pythia.next():
                self.n_failed += 1
                if self.n_failed > max(100, self.spec.n_events // 10):
                    raise RuntimeError(f"Pythia failed {self.n_failed} times for {self.spec.process!r}; giving up")
                continue
            particles = _event_particles(self.pythia.event)
            rows.extend(particles)
            counts[i] = len(particles)
            weights[i] = self.pythia.infoPython().weight()
            i += 1
            self.bar.update(1)
        flat = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        keep = np.hypot(flat[:, 1], flat[:, 2]) > PARTICLE_PT_MIN
        event_of_row = np.repeat(np.arange(n_events), counts)
        counts = np.bincount(event_of_row[keep], minlength=n_events)
        flat = flat[keep]
        fields = {"pid": flat[:, 0].astype(np.int32), "px": flat[:, 1], "py": flat[:, 2], "pz": flat[:, 3], "E": flat[:, 4]}
        return ak.unflatten(ak.zip(fields), counts), weights

    def info(self, sum_weights: float) -> ChunkInfo:
        """Metadata once all events are made: generated events, sum of weights, cross-section."""
        self.bar.close()
        info = self.pythia.infoPython()
        meta = ChunkInfo(n_generated=self.spec.n_events, sum_weights=float(sum_weights),
                         sigma_gen_pb=float(info.sigmaGen()) * PB_PER_MB, sigma_err_pb=float(info.sigmaErr()) * PB_PER_MB)
        log.info("generated %d %s events (%d failed), sigma_gen = %.4g +- %.2g pb", self.spec.n_events,
                 self.spec.process, self.n_failed, meta.sigma_gen_pb, meta.sigma_err_pb)
        return meta


def generate_chunk(spec: ChunkSpec, progress: bool = True) -> tuple[ak.Array, np.ndarray, ChunkInfo]:
    """All events of a chunk at once: particles, generator weights and the chunk metadata."""
    gen = ChunkGenerator(spec, progress)
    particles, weights = gen.batch(spec.n_events)
    return particles, weights, gen.info(weights.sum())


def detector_seed(seed: int, offset: int) -> np.random.SeedSequence:
    """Random stream of the detector response of a chunk, independent of Pythia's."""
    return np.random.SeedSequence([int(seed), int(offset)])


def nanoaod_trees(objects: dict[str, ak.Array], weights: ak.Array, meta: ChunkInfo, spec: ChunkSpec,
                  chunk: int) -> dict[str, dict[str, object]]:
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


def simulate_chunk(spec: ChunkSpec, detector_cfg: dict, chunk: int, progress: bool = True) -> dict[str, dict[str, object]]:
    """Generate one chunk batch by batch, apply the detector response and return its n-tuple trees."""
    from hzg import detector

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
