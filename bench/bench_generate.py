"""Generation: where a chunk's time goes (Pythia, Python record extraction, detector response), before and
after.

Usage: python bench/bench_generate.py [--parton N] [--hadron N] [--process qqbar_Zgamma]

For each level (parton, hadron) the same chunk (same seed, the default config's generator settings) is
made in every mode in this process, interleaved --step events at a time, so a noisy machine slows all
modes alike. "before": the code as it was before issue 15 (next() per event, numpy on scalars in the
bias hook, one Python call per particle and property over the whole record). "after": as the workflow
makes it now (Pythia's nextBatch, the record converted to arrays in C++ and filtered in numpy; the selection
bias as Pythia's own p-hat_T bias and an m-hat thinning in the process-level hook, `generate.NativeBias`, in
the default's m-hat strata, `generate.StratifiedGenerator`).
"hook_bias": "after" with the whole selection bias in a Python hook (plain floats) and one Pythia run, as
before NativeBias and the strata; it gives the n-tuple of "before" bit for bit, and "after" the same law from
another random stream (compared by its selected distributions). "veto" (hadron level): the loose acceptance
(`generate.ShowerAcceptance`) checked after the shower and `forceHadronLevel()` only for the events that pass
(`generation.veto_before_hadronisation`).
Printed per mode: the split of the chunk's time, events/s per core, selected events (full preselection) per
core-second, the ratios to "before", whether "hook_bias" and "before" give identical n-tuples (they must),
and for "after" and "veto", which change the random stream, a comparison of the selected distributions.
"no_qcd_fsr" (parton level): "after" without the QCD final-state shower
(`generation.qcd_final_state_shower: false`, the default's setting; "before" and "after" keep it on, as
before issue 15), compared with "before" in the same way; "no_qcd_fsr_hook_bias": the same with the bias in
the Python hook and one Pythia run, the default's generation before the m-hat strata.

"Pythia" is the time inside next(), nextBatch() (which includes its conversion of the record to arrays)
and forceHadronLevel(), the Python user hooks they call (selection bias, acceptance veto, FSR filter:
part of how the sample is generated) included; "veto" the loose
acceptance checked before hadronisation; "extraction" reading the particle record into Python
(or filtering nextBatch's arrays), weights included;
"detector" the detector response. Init is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from hzg import io
from hzg.data import detector, generate, selection

REPO = Path(__file__).resolve().parents[1]


def _particles_before(event) -> list[tuple[int, float, float, float, float]]:
    """The record extraction of the code before issue 15 (reference for speed and for identical output)."""
    return [(p.id(), p.px(), p.py(), p.pz(), p.e()) for p in event if p.isFinal() and p.isVisible()]


def _final_leptons_and_photons_before(record):
    """The hooks' record loop before issue 15 (indexing the record particle by particle)."""
    leptons, photons = [], []
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


def _bias_before(pthat, mhat, bias):
    """The hook's selection bias before issue 15 (numpy on scalars)."""
    return float(generate.selection_bias(pthat, mhat, bias))


def _hard_process_summary_before(process):
    """The process-level hook's two passes before issue 15: HT/2 over the final state, then the leptons and
    photons through the old record loop."""
    half_ht = 0.5 * sum(particle.mT() for particle in process.particles() if particle.isFinal())
    leptons, photons = _final_leptons_and_photons_before(process)
    return (
        half_ht,
        [p[0] for p in leptons],
        [p[1] for p in leptons],
        [p[0] for p in photons],
        [p[1] for p in photons],
    )


BEFORE = {
    "_event_particles": _particles_before,
    "final_leptons_and_photons": _final_leptons_and_photons_before,
    "hard_process_summary": _hard_process_summary_before,
    "_bias_function": lambda bias: (
        lambda phase_space: _bias_before(phase_space.pTHat(), phase_space.mHat, bias)
    ),
}


class Mode:
    """One way of making the chunk: its own Pythia instance, run batch by batch with its code paths."""

    def __init__(
        self, name: str, spec: generate.ChunkSpec, cfg: dict, before: bool, hook_bias: bool = False
    ) -> None:
        self.name, self.before, self.cfg = name, before, cfg
        # the selection bias in the Python hook, in one Pythia run, as before NativeBias and the m-hat strata
        self.hook_bias = hook_bias or before
        if self.hook_bias:
            spec = dataclasses.replace(spec, mhat_strata=None)
        self.spec = dataclasses.replace(spec, veto_before_hadronisation=False) if before else spec
        with self._code():
            self.gen = generate.make_generator(self.spec, progress=False)
        self.rng = np.random.default_rng(generate.detector_seed(spec.seed, cfg["detector"]["seed_offset"]))
        self.batches, self.weights = [], []
        self.total = self.detector = self.cpu = 0.0

    @contextlib.contextmanager
    def _code(self):
        saved = {name: getattr(generate, name) for name in (*BEFORE, "native_bias")}
        saved_batch = generate.ChunkGenerator.batch
        if self.hook_bias:
            generate.native_bias = lambda *args, **kwargs: None
        if self.before:
            for name, func in BEFORE.items():
                setattr(generate, name, func)
            generate.ChunkGenerator.batch = generate.ChunkGenerator._batch_event_loop
        try:
            yield
        finally:
            for name, func in saved.items():
                setattr(generate, name, func)
            generate.ChunkGenerator.batch = saved_batch

    def step(self, n: int) -> None:
        """The next `n` events, as the workflow makes them (generation, then the detector response)."""
        with self._code():
            c0 = time.process_time()
            t0 = time.perf_counter()
            particles, w = self.gen.batch(n)
            t1 = time.perf_counter()
            self.batches.append(detector.reconstruct(particles, self.cfg["detector"], self.rng))
            t2 = time.perf_counter()
            self.cpu += time.process_time() - c0
        self.weights.append(w)
        self.total += t2 - t0
        self.detector += t2 - t1

    def result(self, workdir: Path) -> dict:
        import awkward as ak

        w = self.gen.final_weights(np.concatenate(self.weights))
        objects = {name: ak.concatenate([b[name] for b in self.batches]) for name in detector.COLLECTIONS}
        path = workdir / f"{self.spec.level}_{self.name}.root"
        io.write_root(path, generate.nanoaod_trees(objects, w, self.gen.info(w.sum()), self.spec, 0))
        passed, _ = selection.preselect(
            io.read_events(path, io.resolve_branch_map("nanoaod")), selection.Cuts(), str(path)
        )
        s = self.gen.seconds
        return {
            "total": self.total,
            "pythia": s["pythia"],
            "hooks": s["hadron_veto"],
            "extract": s["extract"],
            "detector": self.detector,
            "cpu": self.cpu,
            "n": len(w),
            "selected": len(passed["weight"]),
            "vetoed": self.gen.n_hadron_vetoed,
            "path": path,
            "passed": passed,
        }


def run_modes(
    spec: generate.ChunkSpec, cfg: dict, names: list[str], workdir: Path, step: int
) -> dict[str, dict]:
    """Make the chunk in every mode, interleaved `step` events at a time (a noisy machine slows all alike)."""
    modes = [
        Mode(
            name,
            dataclasses.replace(
                spec,
                veto_before_hadronisation=name == "veto",
                qcd_fsr=spec.qcd_fsr and not name.startswith("no_qcd_fsr"),
            ),
            cfg,
            name == "before",
            hook_bias=name in ("hook_bias", "no_qcd_fsr_hook_bias"),
        )
        for name in names
    ]
    for start in range(0, spec.n_events, step):
        for mode in modes:
            mode.step(min(step, spec.n_events - start))
    return {mode.name: mode.result(workdir) for mode in modes}


def report(level: str, name: str, r: dict[str, float]) -> None:
    non_pythia = r["total"] - r["pythia"]
    print(
        f"  {name:6s} total {r['total']:7.2f} s | Pythia {100 * r['pythia'] / r['total']:5.1f} % | "
        f"veto {100 * r['hooks'] / r['total']:4.1f} % | "
        f"extraction {100 * r['extract'] / r['total']:4.1f} % | "
        f"detector {100 * r['detector'] / r['total']:4.1f} % | "
        f"other {100 * (non_pythia - r['hooks'] - r['extract'] - r['detector']) / r['total']:4.1f} % "
        f"| non-Pythia {100 * non_pythia / r['total']:5.1f} %"
    )
    print(
        f"         {r['n'] / r['cpu']:8.1f} events/s/core, {r['selected'] / r['cpu']:7.2f} selected/core-s "
        f"(per CPU-second of this process; wall {r['n'] / r['total']:.1f} events/s) "
        f"({r['selected']} selected of {r['n']}, {r['vetoed']} vetoed before hadronisation)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parton", type=int, default=10000, help="events of the parton-level chunk")
    parser.add_argument("--hadron", type=int, default=600, help="events of the hadron-level chunk")
    parser.add_argument("--process", default="qqbar_Zgamma")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument(
        "--step",
        type=int,
        default=generate.BATCH_SIZE,
        help="parton level: events per interleaved step (and per detector call, as in the workflow)",
    )
    parser.add_argument(
        "--hadron-step", type=int, default=100, help="hadron level: events per interleaved step"
    )
    args = parser.parse_args()
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    tmp = tempfile.TemporaryDirectory()
    workdir = Path(tmp.name)
    results = {}
    for level, n, names, step in (
        (
            "parton",
            args.parton,
            ["before", "hook_bias", "after", "no_qcd_fsr", "no_qcd_fsr_hook_bias"],
            args.step,
        ),
        ("hadron", args.hadron, ["before", "hook_bias", "after", "veto"], args.hadron_step),
    ):
        spec = generate.chunk_spec(
            args.process,
            n,
            args.seed,
            # with the QCD final-state shower, as before issue 15 (mode no_qcd_fsr: without, as the default)
            dict(cfg["generation"], level=level, qcd_final_state_shower=True),
            cfg["sqrt_s_tev"],
        )
        res = results[level] = run_modes(spec, cfg, names, workdir, step=step)
        print(f"{level} level, {args.process}, {n} events (modes interleaved {step} events at a time):")
        for name in names:
            report(level, name, res[name])
        before = res["before"]
        for name in names[1:]:
            r = res[name]
            print(
                f"  {name}/before: events/s {before['total'] / r['total']:.2f}x, selected/core-s "
                f"{(r['selected'] / r['total']) / max(before['selected'] / before['total'], 1e-12):.2f}x, "
                f"non-Pythia share {100 * (before['total'] - before['pythia']) / before['total']:.1f} % -> "
                f"{100 * (r['total'] - r['pythia']) / r['total']:.1f} %"
            )
        import uproot

        for new, old in (("after", "hook_bias"), ("no_qcd_fsr", "no_qcd_fsr_hook_bias")):
            if new in res and old in res:
                print(
                    f"  {new}/{old} (Pythia's p-hat_T bias and the m-hat thinning in m-hat strata against "
                    f"the bias in a Python hook): events/s {res[old]['total'] / res[new]['total']:.2f}x, "
                    f"CPU {res[old]['cpu'] / res[new]['cpu']:.2f}x"
                )
        a, b = (uproot.open(res[k]["path"])["Events"].arrays(library="np") for k in ("hook_bias", "before"))
        same = all(
            np.array_equal(
                np.concatenate(a[k]) if a[k].dtype == object else a[k],
                np.concatenate(b[k]) if b[k].dtype == object else b[k],
            )
            for k in a
        )
        print(f"  identical n-tuples hook_bias/before (same seed): {same}")
        # another random stream: the selected distributions must agree
        for other in ("after", "veto", "no_qcd_fsr"):
            if other not in res:
                continue
            from scipy import stats

            for var in ("mllg", "mll", "g_pt", "g_eta", "lm_pt", "lp_pt"):
                x, y = (res[k]["passed"].get(var) for k in ("before", other))
                if x is not None and y is not None and len(x) and len(y):
                    ks = stats.ks_2samp(x, y)
                    print(
                        f"  {other} vs before, selected {var}: means {np.mean(x):.2f} / {np.mean(y):.2f}, "
                        f"KS p-value {ks.pvalue:.2f}"
                    )
    p, h = results["parton"], results["hadron"]
    for name in ("before", "after"):
        print(
            f"hadron/parton cost per event, {name}: "
            f"{(h[name]['total'] / h[name]['n']) / (p[name]['total'] / p[name]['n']):.1f}x"
        )
    for name in ("after", "veto"):
        per_core_s = h[name]["selected"] / h[name]["total"]
        per_core_s_before = max(h["before"]["selected"] / h["before"]["total"], 1e-12)
        print(
            f"hadron-level selected events per core-second, {name}/before: "
            f"{per_core_s / per_core_s_before:.2f}x"
        )


if __name__ == "__main__":
    main()
