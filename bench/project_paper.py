"""The paper's grid on paper: projected wall time of config/paper.yaml per stage, from measured per-step
costs.

Usage: python bench/project_paper.py [--config config/paper.yaml] [--gen-rate N] [...]

Every rate is a command-line option whose default is the figure measured on this project's 2-core
machines with the benchmarks in bench/ (docs/benchmarks.md); pass your own to redo the sums. Job
counts, events, epochs, runs and trials are read from the config. Two machines:
(a) one node with 8 cores (no GPU: the networks train on CPU, 4 threads per job as training.threads),
(b) 100 Slurm cores + 4 GPUs (networks on the GPUs, one job per GPU; trees and everything else on the cores).
Wall time of a stage = max(total core-seconds / cores, its longest single job); stages run one after the
other (an upper bound: Snakemake overlaps them where the DAG allows).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hzg.config_checks import load_config

REPO = Path(__file__).resolve().parents[1]
TREES = ("xgboost", "bdt")


def hours(seconds: float) -> str:
    return f"{seconds / 3600:10.1f} h" if seconds >= 360 else f"{seconds / 60:10.1f} min"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=REPO / "config/paper.yaml")
    # generation at hadron level, events per CPU-second (bench/bench_generate.py, "veto" mode, --process ...)
    ap.add_argument("--gen-rate", type=float, default=162.0, help="qqbar_Zgamma, hadron level, events/s/core")
    ap.add_argument(
        "--gen-rate-signal", type=float, default=165.0, help="ggH_Zgamma, hadron level, events/s/core"
    )
    ap.add_argument(
        "--gen-rate-fsr", type=float, default=11.5, help="drellyan_fsr (kept events), hadron level"
    )
    ap.add_argument(
        "--gen-rate-fsr-jet",
        type=float,
        default=11.5,
        help="drellyan_jet_fsr (kept events), hadron level: assumed as drellyan_fsr (parton level, measured: "
        "3.5 against 3.7 ms per kept event, bench/bench_fsr_slice.py)",
    )
    # selection fractions: the paper's 20 % (signal) and 11 % (background); FSR sample from the default run
    ap.add_argument("--sel-signal", type=float, default=0.20)
    ap.add_argument("--sel-background", type=float, default=0.11)
    ap.add_argument("--sel-fsr", type=float, default=0.08)
    ap.add_argument(
        "--sel-fsr-jet", type=float, default=0.13, help="drellyan_jet_fsr (the default run: 0.13)"
    )
    ap.add_argument("--skim-rate", type=float, default=238e3, help="events/s/core (bench/bench_skim.py)")
    ap.add_argument(
        "--feature-rate", type=float, default=73e3, help="selected events/s (bench/bench_skim.py)"
    )
    # training throughput, events/s per job (bench/bench_train.py on CPU; bench/bench_gpu.py on a GPU)
    ap.add_argument(
        "--cpu-etn", type=float, default=118e3, help="ETN-like models (etn, ft_transformer, resnet) on CPU"
    )
    ap.add_argument("--cpu-mlp", type=float, default=1.0e6, help="fnn, dfnn on CPU")
    ap.add_argument(
        "--gpu-etn", type=float, default=1.0e6, help="ETN-like models on one GPU (assumed: bench_gpu.py)"
    )
    ap.add_argument("--gpu-mlp", type=float, default=10e6, help="fnn, dfnn on one GPU (assumed)")
    ap.add_argument("--disco-factor", type=float, default=0.8, help="throughput with DisCo / without")
    ap.add_argument("--tree-core-hours", type=float, default=1.0, help="one xgboost / BDT job (assumed)")
    # stages after training, per job (the ci run's benchmark table on the 2-core machine; binned, nearly
    # size-free)
    ap.add_argument("--fit-job-s", type=float, default=300.0)
    ap.add_argument(
        "--eval-job-s", type=float, default=60.0, help="fixed cost of one evaluate job (ci run: 30-35 s)"
    )
    ap.add_argument("--infer-rate", type=float, default=300e3, help="scoring, events/s/core (assumed)")
    args = ap.parse_args()

    cfg = load_config(args.config)  # an overlay (config/paper.yaml) merged onto config/config.yaml
    samples = cfg["samples"]
    # per process, so that a config's sample names do not matter
    rate_of = {
        "ggH_Zgamma": args.gen_rate_signal,
        "vbf_H_Zgamma": args.gen_rate_signal,
        "qqbar_Zgamma": args.gen_rate,
        "drellyan_fsr": args.gen_rate_fsr,
        "drellyan_jet_fsr": args.gen_rate_fsr_jet,
    }
    frac_of = {
        "ggH_Zgamma": args.sel_signal,
        "vbf_H_Zgamma": args.sel_signal,
        "qqbar_Zgamma": args.sel_background,
        "drellyan_fsr": args.sel_fsr,
        "drellyan_jet_fsr": args.sel_fsr_jet,
    }
    gen = {s: v["generate"] for s, v in samples.items()}
    rate = {s: rate_of[g["process"]] for s, g in gen.items()}
    frac = {s: frac_of[g["process"]] for s, g in gen.items()}
    n_events = sum(g["n_events"] for g in gen.values())
    n_chunks = sum(g["n_chunks"] for g in gen.values())
    selected = sum(g["n_events"] * frac[s] for s, g in gen.items())
    n_variations = 1 + 2  # nominal + photon energy scale up / down
    trials = cfg["split"]["n_trials"]
    n_train = selected * cfg["split"]["fractions"][0]
    epochs = cfg["training"]["epochs"]
    runs = cfg["runs"]

    # core-seconds and longest job per stage
    stages: dict[str, tuple[float, float]] = {}
    stages["generate"] = (
        sum(g["n_events"] / rate[s] for s, g in gen.items()),
        max(g["n_events"] / g["n_chunks"] / rate[s] for s, g in gen.items()),
    )
    stages["skim"] = (
        n_variations * n_events / args.skim_rate,
        max(g["n_events"] / g["n_chunks"] for g in gen.values()) / args.skim_rate,
    )
    stages["features"] = (
        n_variations * selected / args.feature_rate,
        max(g["n_events"] * frac[s] for s, g in gen.items()) / args.feature_rate,
    )

    def nn_job_seconds(run: dict, gpu: bool) -> float:
        etn_like = run["model"] in ("etn", "ft_transformer", "resnet")
        r = (
            (args.gpu_etn if etn_like else args.gpu_mlp)
            if gpu
            else (args.cpu_etn if etn_like else args.cpu_mlp)
        )
        if "disco" in run["loss"]:
            r *= args.disco_factor
        return epochs * n_train / r

    nn_runs = [r for r in runs if r["model"] not in TREES]
    tree_jobs = trials * sum(r["model"] in TREES for r in runs)
    eval_job = (
        args.eval_job_s + trials * selected * 2 / 3 / args.infer_rate
    )  # validation + test of every trial
    after = {
        "evaluate": (len(runs) * eval_job, eval_job),
        "friends": (  # one job per sample scores all its n-tuples: the largest sample is the longest job
            len(runs) * selected / args.infer_rate,
            max(g["n_events"] * frac[s] for s, g in gen.items()) * len(runs) / args.infer_rate,
        ),
        "fit": (len(runs) * args.fit_job_s, args.fit_job_s),
    }
    print(
        f"{args.config.name}: {n_events / 1e6:.0f} M generated events in {n_chunks} chunks, "
        f"about {selected / 1e6:.1f} M selected, {n_train / 1e6:.1f} M training events per job; "
        f"{len(runs)} runs x {trials} trials, up to {epochs} epochs"
    )
    print(f"{'stage':10s} {'core-hours':>12s} {'(a) 1 node, 8 cores':>22s} {'(b) 100 cores + 4 GPUs':>24s}")
    totals = {"a": 0.0, "b": 0.0}

    def row(name: str, core_s: float, wall_a: float, wall_b: float) -> None:
        totals["a"] += wall_a
        totals["b"] += wall_b
        print(f"{name:10s} {core_s / 3600:12.1f} {hours(wall_a):>22s} {hours(wall_b):>24s}")

    for name, (core_s, longest) in stages.items():
        row(name, core_s, max(core_s / 8, longest), max(core_s / 100, longest))
    # training: (a) every job on the CPU, 2 jobs of 4 threads at a time; (b) networks on 4 GPUs, trees on the
    # cores
    cpu_jobs = [nn_job_seconds(r, gpu=False) for r in nn_runs for _ in range(trials)]
    gpu_jobs = sorted((nn_job_seconds(r, gpu=True) for r in nn_runs for _ in range(trials)), reverse=True)
    tree_s = tree_jobs * args.tree_core_hours * 3600
    wall_a = max(sum(cpu_jobs) / 2 + tree_s / 8, max(cpu_jobs))
    gpus = [0.0] * 4
    for job in gpu_jobs:  # longest first onto the least loaded GPU
        gpus[gpus.index(min(gpus))] += job
    wall_b = max(max(gpus), tree_s / 100, args.tree_core_hours * 3600)
    row("train", sum(cpu_jobs) * 4 + tree_s, wall_a, wall_b)
    for name, (core_s, longest) in after.items():
        row(name, core_s, max(core_s / 8, longest), max(core_s / 100, longest))
    print(f"{'total':10s} {'':12s} {hours(totals['a']):>22s} {hours(totals['b']):>24s}")
    print(
        f"(training on CPU: {sum(cpu_jobs) / 3600:.0f} job-hours of 4 threads; "
        f"on GPU: {sum(gpu_jobs) / 3600:.1f} GPU-hours, "
        f"{max(gpus) / 3600:.1f} h on the busiest of 4 GPUs)"
    )


if __name__ == "__main__":
    main()
