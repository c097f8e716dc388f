#!/usr/bin/env bash
# GPU check of the training path, for a fresh GPU machine with a copy of the repository and no venv (< 5 min).
#
#   bash bench/gpu_check.sh            # from anywhere; uses python3.11 if present, else python3
#
# 1. makes a venv (.venv, kept for reruns; VENV=... for another place) and installs with pip what training needs, from pyproject.toml:
#    torch at the pinned version from PyPI (the CUDA build on Linux x86_64) and the library's dependencies,
#    leaving out those training does not import (Pythia 8, Snakemake and its Slurm plugin, the fit and plot
#    packages), plus pytest;
# 2. prints the GPU, then bench/gpu_check.py (a training run killed mid-way resumes on CUDA to the same history);
# 3. tests/test_ensemble.py on CUDA (the ensemble's losses equal separate runs with the same seeds);
# 4. bench/bench_gpu.py: events/s of the plain loop, compiled + bf16, and the 3-member ensemble, with BCE and
#    with BCE + DisCo.
# Each step has its own time limit, so one that hangs cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}   # git-ignored; absent on a fresh machine
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }

step "install into $VENV with $($PY --version)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || exit 1
DEPS=$("$VENV/bin/python" - <<'EOF'
import re, sys
try:
    import tomllib
except ImportError:  # Python < 3.11: the dependency list read with a regular expression
    tomllib = None
text = open("pyproject.toml").read()
deps = tomllib.loads(text)["project"]["dependencies"] if tomllib else \
    re.findall(r'^\s*"([^"]+)",', text.split("dependencies = [", 1)[1].split("]", 1)[0], re.M)
skip = ("pythia8mc", "snakemake", "matplotlib", "mplhep", "pyhf", "iminuit", "cabinetry", "tabulate")
print(" ".join(d for d in deps if not d.startswith(skip)))
EOF
)
echo "pip install $DEPS pytest"
if command -v uv >/dev/null; then
  timeout 240 uv pip install --python "$VENV/bin/python" -q $DEPS pytest || exit 1
else
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  timeout 240 "$VENV/bin/python" -m pip install -q $DEPS pytest || exit 1
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PYBIN="$VENV/bin/python"
"$PYBIN" - <<'EOF' || exit 1
import torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print(f"GPU: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")
EOF
status=0
step "resume on CUDA (bench/gpu_check.py)"
timeout 120 "$PYBIN" bench/gpu_check.py || status=1
step "ensemble = separate runs, on CUDA (tests/test_ensemble.py)"
timeout 150 "$PYBIN" -m pytest -q -p no:cacheprovider tests/test_ensemble.py || status=1
step "training throughput on CUDA (bench/bench_gpu.py)"
timeout 240 "$PYBIN" bench/bench_gpu.py --steps 20 || status=1
step "done, status $status"
exit $status
