"""Shared fixtures: the workflow run once per session on config/ci.yaml in a scratch copy."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "scripts", "src", "envs"]


def copy_workflow(dest: Path) -> Path:
    """A scratch copy of the workflow (what a user clones), without results."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in WORKFLOW_FILES:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    return dest


def run_killable(cmd: list[str], cwd: Path, env: dict | None, timeout: float) -> tuple[int, str]:
    """Run `cmd` in its own process group; past `timeout` s, SIGKILL the whole group and fail the test.

    Snakemake waiting on jobs or status checks does not stop on SIGTERM, so the group is killed.
    Returns the exit status and the merged stdout/stderr.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{' '.join(map(str, cmd[:3]))} ... did not finish in {timeout:.0f} s:\n{output[-6000:]}")
    return proc.returncode, output


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on 2 cores in `workdir`; on failure show the end of its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory) -> Path:
    """The whole DAG on config/ci.yaml, once per test session."""
    work = copy_workflow(tmp_path_factory.mktemp("ci"))
    snakemake(work, "--configfile", "config/ci.yaml")
    return work


@pytest.fixture
def figures(monkeypatch):
    """Every figure `hzg.results.plotting` saves, kept open so that a test can read its values back."""
    from hzg.results import plotting

    kept = []
    real_close = plotting.plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    for fig in kept:
        real_close(fig)


@pytest.fixture
def kernel_calls(monkeypatch):
    """`record(name)`: the project's kernel library replaced by a stand-in that runs the real operators and
    records the shape of the first argument of every call of operator `name`; returns that list."""
    from hzg.learn.models import small_attention

    kernel = small_attention.extension()

    def record(name: str) -> list:
        calls = []

        def recorded(*args):
            calls.append(args[0].shape)
            return getattr(kernel, name)(*args)

        class Recording:
            def __getattr__(self, op):
                return recorded if op == name else getattr(kernel, op)

        monkeypatch.setattr(small_attention, "extension", lambda: Recording())
        return calls

    return record
