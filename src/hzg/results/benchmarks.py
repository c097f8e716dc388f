"""Per-job Snakemake benchmark files (wall time, max RSS) summed per rule and per stage."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

#: The stage (workflow/rules/*.smk, the DAG's columns) of each rule; a rule not listed counts as "report".
STAGE_OF_RULE: dict[str, str] = {
    "generate": "generate",
    "skim": "skim",
    "skim_variation": "skim",
    "resolution_map": "features",
    "features": "features",
    "features_variation": "features",
    "train": "train",
    "evaluate": "evaluate",
    "evaluate_random": "evaluate",
    "interpret": "evaluate",
    "friends": "friends",
    "fit": "fit",
}
STAGES = ("generate", "skim", "features", "train", "evaluate", "friends", "fit", "report")


def read_benchmarks(paths: Iterable[str | Path], root: str | Path) -> pd.DataFrame:
    """One row per job: rule (first folder under `root`), job, wall [s], CPU [s], max RSS [MB].

    A Snakemake benchmark file is a TSV with one row per repeat; the last row counts.
    """
    root = Path(root)
    rows = []
    for path in sorted(Path(p) for p in paths):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        last = frame.iloc[-1]
        rel = path.relative_to(root)
        rss = pd.to_numeric(last.get("max_rss", float("nan")), errors="coerce")
        cpu = pd.to_numeric(last.get("cpu_time", float("nan")), errors="coerce")
        rows.append(
            {
                "rule": rel.parts[0],
                "job": str(rel.with_suffix("")),
                "wall_s": float(last["s"]),
                "cpu_s": float(cpu),
                "max_rss_mb": float(rss),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "cpu_s", "max_rss_mb"])


def stage_of(rule: str) -> str:
    """The DAG stage a rule belongs to (tables and plots: "report")."""
    return STAGE_OF_RULE.get(rule, "report")


def rule_frame(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: stage, jobs, summed and largest job wall time, CPU time, peak RSS, share of the summed wall
    time."""
    jobs = jobs.assign(stage=jobs["rule"].map(stage_of))
    grouped = jobs.groupby(["stage", "rule"], sort=False)
    frame = grouped.agg(
        jobs=("job", "size"),
        wall=("wall_s", "sum"),
        max_job=("wall_s", "max"),
        cpu=("cpu_s", "sum"),
        rss=("max_rss_mb", "max"),
    ).reset_index()
    frame["share"] = 100.0 * frame["wall"] / max(frame["wall"].sum(), 1e-12)
    frame["order"] = frame["stage"].map({s: i for i, s in enumerate(STAGES)})
    frame = frame.sort_values(["order", "wall"], ascending=[True, False]).drop(columns="order")
    return frame.rename(
        columns={
            "stage": "stage",
            "rule": "rule",
            "jobs": "jobs",
            "wall": "wall time [s]",
            "max_job": "longest job [s]",
            "cpu": "CPU time [s]",
            "rss": "max RSS [MB]",
            "share": "share of wall time [%]",
        }
    ).reset_index(drop=True)


def stage_frame(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage (in DAG order) and in total: jobs, summed wall time, CPU time, peak RSS, share of wall
    time."""
    jobs = jobs.assign(stage=jobs["rule"].map(stage_of))
    grouped = jobs.groupby("stage")
    frame = grouped.agg(
        jobs=("job", "size"),
        wall=("wall_s", "sum"),
        max_job=("wall_s", "max"),
        cpu=("cpu_s", "sum"),
        rss=("max_rss_mb", "max"),
    )
    frame = frame.reindex([s for s in STAGES if s in frame.index]).reset_index()
    total = pd.DataFrame(
        [
            {
                "stage": "total",
                "jobs": frame["jobs"].sum(),
                "wall": frame["wall"].sum(),
                "max_job": frame["max_job"].max(),
                "cpu": frame["cpu"].sum(),
                "rss": frame["rss"].max(),
            }
        ]
    )
    frame = pd.concat([frame, total], ignore_index=True)
    frame["share"] = 100.0 * frame["wall"] / max(float(total["wall"].iloc[0]), 1e-12)
    return frame.rename(
        columns={
            "wall": "wall time [s]",
            "max_job": "longest job [s]",
            "cpu": "CPU time [s]",
            "rss": "max RSS [MB]",
            "share": "share of wall time [%]",
        }
    )
