"""bench/gpu_check.sh, the GPU check, as far as a machine without a GPU can run it: its `--cpu` dry run with
a Python that has torch and wheels carried in for a machine that cannot reach PyPI."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"


def _probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (package hzg_carried_probe), standing for the carried awkward, uproot, …"""
    folder.mkdir()
    path = folder / "hzg_carried_probe-0.1-py3-none-any.whl"
    info = "hzg_carried_probe-0.1.dist-info"
    files = {
        "hzg_carried_probe/__init__.py": "VALUE = 1\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: hzg-carried-probe\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _run(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_gpu_check_refuses_an_unknown_argument():
    p = _run(["--gpu"], dict(os.environ), 30)
    assert p.returncode == 2 and "usage: bash bench/gpu_check.sh [--cpu]" in p.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_uses_the_python_that_has_torch_and_installs_the_carried_wheels(tmp_path):
    """The way it runs on a lent GPU machine (PyTorch in the image, no PyPI), with --cpu: the Python that has
    torch is used as it is (no venv, no pip from an index), the carried wheels are installed into their own
    folder, and the ensemble test and bench_gpu.py's smoke test run and pass."""
    _probe_wheel(tmp_path / "wheels")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "VENV": str(tmp_path / "no-venv"),
        "WHEELS": str(tmp_path / "wheels"),
        "TMPDIR": str(tmp_path),
    }
    p = _run(["--cpu"], env, 900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert f"use {sys.executable}" in out and "install into" not in out
    assert "install the carried wheels" in out
    assert (tmp_path / "hzg_gpu_check_site" / "hzg_carried_probe" / "__init__.py").is_file()
    assert "no GPU: a dry run on the CPU" in out
    assert "skipped: CUDA only" in out
    assert " passed" in out  # tests/test_ensemble.py
    assert "4 ensemble members" in out and "ensemble BCE+DisCo" in " ".join(out.split())  # step 5
    assert "=== done, status 0" in out
    assert not (tmp_path / "no-venv").exists()


def test_bench_gpu_fails_when_only_names_no_variant():
    """A misspelt --only in gpu_check.sh must not pass as a measurement of nothing."""
    bench = REPO / "bench" / "bench_gpu.py"
    p = subprocess.run(
        [sys.executable, str(bench), "--device", "cpu", "--only", "no such variant"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "--only 'no such variant' names no variant" in p.stderr
