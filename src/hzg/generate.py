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


def generate_chunk(spec: ChunkSpec, progress: bool = True) -> tuple[ak.Array, ak.Array, ChunkInfo]:
    """Run Pythia for one chunk.

    Returns the jagged final-state particles (fields pid, px, py, pz, E), the per-event generator
    weights and the chunk metadata (generated events, sum of weights, cross-section in pb).
    """
    import pythia8mc  # imported here so that the rest of the library works without the generator

    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(spec):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia refused the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise for process {spec.process!r}")

    counts = np.zeros(spec.n_events, dtype=np.int64)
    weights = np.zeros(spec.n_events, dtype=np.float64)
    rows: list[tuple[int, float, float, float, float]] = []
    n_failed = 0
    i = 0
    with tqdm(total=spec.n_events, desc=f"pythia {spec.process}", disable=not progress, mininterval=5) as bar:
        while i < spec.n_events:
            if not pythia.next():
                n_failed += 1
                if n_failed > max(100, spec.n_events // 10):
                    raise RuntimeError(f"Pythia failed {n_failed} times for {spec.process!r}; giving up")
                continue
            particles = _event_particles(pythia.event)
            rows.extend(particles)
            counts[i] = len(particles)
            weights[i] = pythia.infoPython().weight()
            i += 1
            bar.update(1)
    info = pythia.infoPython()
    meta = ChunkInfo(
        n_generated=spec.n_events,
        sum_weights=float(weights.sum()),
        sigma_gen_pb=float(info.sigmaGen()) * PB_PER_MB,
        sigma_err_pb=float(info.sigmaErr()) * PB_PER_MB,
    )
    log.info("generated %d %s events (%d failed), sigma_gen = %.4g +- %.2g pb", spec.n_events,
             spec.process, n_failed, meta.sigma_gen_pb, meta.sigma_err_pb)
    flat = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    fields = {
        "pid": flat[:, 0].astype(np.int32),
        "px": flat[:, 1],
        "py": flat[:, 2],
        "pz": flat[:, 3],
        "E": flat[:, 4],
    }
    particles = ak.unflatten(ak.zip(fields), counts)
    return particles, ak.Array(weights), meta


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
    """Generate one chunk, apply the detector response and return its n-tuple trees."""
    from hzg import detector

    particles, weights, meta = generate_chunk(spec, progress=progress)
    rng = np.random.default_rng(detector_seed(spec.seed, detector_cfg["seed_offset"]))
    objects = detector.reconstruct(particles, detector_cfg, rng)
    for name, coll in objects.items():
        log.info("%s: %.3f per event after the detector response", name, float(ak.mean(ak.num(coll))))
    return nanoaod_trees(objects, weights, meta, spec, chunk)
