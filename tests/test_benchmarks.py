"""Per-job benchmark files summed per rule and per stage."""

from pathlib import Path

import pandas as pd
import pytest

from hzg.results import benchmarks

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _write(path: Path, seconds: float, rss: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_jobs_sum_per_rule_and_stage(tmp_path):
    _write(tmp_path / "generate/signal/0.tsv", 10.0, 300.0, 9.0)
    _write(tmp_path / "generate/signal/1.tsv", 20.0, 400.0, 19.0)
    _write(tmp_path / "skim/signal/0.tsv", 2.0, 200.0, 1.5)
    _write(tmp_path / "table_one/table_one.tsv", 8.0, 150.0, 7.0)
    jobs = benchmarks.read_benchmarks(tmp_path.rglob("*.tsv"), tmp_path)
    assert len(jobs) == 4 and set(jobs["rule"]) == {"generate", "skim", "table_one"}
    rules = benchmarks.rule_frame(jobs).set_index("rule")
    assert rules.loc["generate", "jobs"] == 2 and rules.loc["generate", "wall time [s]"] == 30.0
    assert rules.loc["generate", "longest job [s]"] == 20.0 and rules.loc["generate", "max RSS [MB]"] == 400.0
    assert rules.loc["table_one", "stage"] == "report"
    assert rules["share of wall time [%]"].sum() == pytest.approx(100.0)
    stages = benchmarks.stage_frame(jobs)
    assert stages["stage"].tolist() == ["generate", "skim", "report", "total"]  # DAG order, then the total
    total = stages.set_index("stage").loc["total"]
    assert (
        total["wall time [s]"] == 40.0 and total["CPU time [s]"] == pytest.approx(36.5) and total["jobs"] == 4
    )
    assert total["max RSS [MB]"] == 400.0


def test_missing_measurements_are_nan_not_errors(tmp_path):
    path = tmp_path / "fit/etn_bce.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("s\th:m:s\tmax_rss\tcpu_time\n1.5\t0:00:01\tNA\tNA\n")
    jobs = benchmarks.read_benchmarks([path], tmp_path)
    assert jobs.loc[0, "wall_s"] == 1.5 and pd.isna(jobs.loc[0, "max_rss_mb"])
