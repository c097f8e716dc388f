"""Generation: the ISR veto reading the emitted parton from `event.back()` against searching the new entries.

The background's ISR veto (`generation.isr_veto_ht`) is a Python user hook that Pythia calls at every
initial-state branching (about 4 per accepted event). It needs the emitted parton: the search over the
branching's new entries (`hzg.data.generate.emitted_isr_parton`, what the hook did before) or the last entry,
where Pythia's shower puts it (what it does now). This benchmark makes the same default background chunk both
ways, interleaved --step events at a time in one process, and prints the CPU seconds of each, their ratio, and
whether the two chunks are identical (they must be).

    .venv/bin/python bench/bench_isr_veto.py [--events 24000] [--step 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import awkward as ak
import numpy as np
import yaml

from hzg.data import generate

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


@contextlib.contextmanager
def searching_veto():
    """The hooks made inside the block find the emitted parton by searching the new entries, as the hook
    did before (its code for the default background, which drops no event on its first emission)."""
    make_hook = generate._user_hook
    emitted = generate.ISR_EMITTED_STATUS

    def veto(self, size_old, event, i_sys) -> bool:
        if i_sys != 0:
            return False
        for i in range(size_old, event.size()):
            particle = event[i]
            if particle.status() == emitted:
                pt = particle.pT()
                if pt > self.isr_limit:
                    return True
                if self.first_isr:
                    self.first_isr = False
                    self.drop = False  # no drop_first_isr_above for this sample
                return False
        return False

    def hook_with_search(*args, **kwargs):
        if kwargs.get("drop_first_isr_above") is not None:
            raise ValueError("the search baseline is the default background's hook (no Drell-Yan slicing)")
        hook = make_hook(*args, **kwargs)
        type(hook).doVetoISREmission = veto
        return hook

    generate._user_hook = hook_with_search
    try:
        yield
    finally:
        generate._user_hook = make_hook


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=24000)
    parser.add_argument("--step", type=int, default=2000)
    args = parser.parse_args()
    cfg = yaml.safe_load(CONFIG.read_text())
    spec = generate.chunk_spec("qqbar_Zgamma", args.events, 4242, cfg["generation"], cfg["sqrt_s_tev"])
    modes = {"search": searching_veto, "back": contextlib.nullcontext}
    gens = {name: generate.make_generator(spec, progress=False) for name in modes}
    cpu = dict.fromkeys(modes, 0.0)
    out: dict[str, list] = {name: [] for name in modes}
    for start in range(0, args.events, args.step):
        for name, code in modes.items():
            with code():
                c0 = time.process_time()
                out[name].append(gens[name].batch(min(args.step, args.events - start)))
                cpu[name] += time.process_time() - c0
    particles = {k: ak.concatenate([p for p, _ in v]) for k, v in out.items()}
    weights = {k: np.concatenate([w for _, w in v]) for k, v in out.items()}
    same = np.array_equal(weights["search"], weights["back"]) and ak.all(
        ak.flatten(particles["search"].px == particles["back"].px)
    )
    print(f"default background chunk, {args.events} events, interleaved {args.step} at a time (CPU seconds)")
    print(f"  search the new entries: {cpu['search']:.2f} s, event.back(): {cpu['back']:.2f} s")
    print(f"  search / back: {cpu['search'] / cpu['back']:.3f}; identical chunks: {bool(same)}")


if __name__ == "__main__":
    main()
