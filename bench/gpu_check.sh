#!/usr/bin/env bash
# GPU check of the training path, for a fresh GPU machine with a copy of the repository (< 5 min).
#
#   bash bench/gpu_check.sh            # from anywhere
#   bash bench/gpu_check.sh --cpu      # a dry run of every step that needs no GPU, on a machine without one
#
# 1. the Python: the first of $PYTHON, $VENV/bin/python (VENV default .venv), python3 and python3.11 whose
#    torch sees a CUDA device (any torch with --cpu) is used as it is. An image that has PyTorch but cannot
#    reach PyPI (this project's lent GPU machines) gets the few packages it lacks from wheels carried in
#    $WHEELS (default .whl/; bench/gpu_wheels.sh downloads them on a machine that can), installed with no
#    index into a folder of their own. With no such Python, it makes the venv $VENV and installs with pip
#    from PyPI what training needs, from pyproject.toml: torch at the pinned version (the CUDA build on Linux
#    x86_64) and the library's dependencies, leaving out those training does not import (Pythia 8, Snakemake
#    and its Slurm plugin, the fit and plot packages), plus pytest;
# 2. prints the GPU, then bench/gpu_check.py (a training run killed mid-way resumes on CUDA to the same history);
# 3. tests/test_ensemble.py on CUDA (the ensemble's losses equal separate runs with the same seeds);
# 4. bench/bench_gpu.py: events/s of the plain loop, compiled + bf16, and the 3-member ensemble, with BCE and
#    with BCE + DisCo; 5. the compiled ensemble with 12 members and DisCo (a run's losses times its trials in one
#    step: how far a fuller GPU goes towards issue 15's 10 M events/s).
# Each step has its own time limit, so one that hangs cannot eat the others' time; on the GPU they add up to
# 10 min, a lent machine's limit for one command. With --cpu, step 2's resume
# check (CUDA only) is skipped, step 3 runs on the CPU, and steps 4 and 5 are bench_gpu.py's CPU smoke tests.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
CPU=0
case "${1:-}" in
  --cpu) CPU=1 ;;
  "") ;;
  *) echo "usage: bash bench/gpu_check.sh [--cpu]" >&2; exit 2 ;;
esac
VENV=${VENV:-.venv}   # git-ignored; absent on a fresh machine
WHEELS=${WHEELS:-.whl}   # the carried wheels (bench/gpu_wheels.sh), git-ignored
SITE=${TMPDIR:-/tmp}/hzg_gpu_check_site   # where their packages go
NEEDED="numpy pandas pyarrow yaml tqdm awkward uproot pytest torch"
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }
ready() {  # $1 has a torch that sees a GPU (with --cpu: any torch)
  "$1" -c "import sys, torch; sys.exit(0 if $CPU or torch.cuda.is_available() else 1)" 2>/dev/null
}

PYBIN=""
for candidate in ${PYTHON:-} "$VENV/bin/python" python3 python3.11; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  if ready "$path"; then PYBIN=$path; break; fi
done
if [ -n "$PYBIN" ]; then
  step "use $PYBIN ($("$PYBIN" --version 2>&1)) with its own torch"
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "install the carried wheels into $SITE: $(cd "$WHEELS" && echo *.whl)"
    "$PYBIN" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$SITE"
  fi
else
  PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
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
  PYBIN="$VENV/bin/python"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PYBIN" -c "
import importlib.util
print(' '.join(m for m in '$NEEDED'.split() if importlib.util.find_spec(m) is None))")
if [ -n "$missing" ]; then
  echo "$PYBIN lacks: $missing. Where this machine cannot reach PyPI, run bash bench/gpu_wheels.sh on one" \
    "that can and carry its .whl/ here (WHEELS=$WHEELS)."
  exit 1
fi
"$PYBIN" - "$CPU" <<'EOF' || exit 1
import sys
import torch
if sys.argv[1] == "1":
    print(f"no GPU: a dry run on the CPU (torch {torch.__version__})")
else:
    assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
    print(f"GPU: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")
EOF
status=0
step "resume on CUDA (bench/gpu_check.py)"
if [ "$CPU" = 1 ]; then
  echo "skipped: CUDA only (tests/test_training.py checks the resume on the CPU)"
else
  timeout 120 "$PYBIN" bench/gpu_check.py || status=1
fi
on=$([ "$CPU" = 1 ] && echo "the CPU" || echo CUDA)
step "ensemble = separate runs, on $on (tests/test_ensemble.py)"
timeout 150 "$PYBIN" -m pytest -q -p no:cacheprovider tests/test_ensemble.py || status=1
step "training throughput on $on (bench/bench_gpu.py)"
if [ "$CPU" = 1 ]; then
  timeout 240 "$PYBIN" bench/bench_gpu.py --device cpu --steps 2 --batch 512 || status=1
else
  timeout 210 "$PYBIN" bench/bench_gpu.py --steps 20 || status=1
fi
step "the ensemble with more members: 12 runs in one step, BCE + DisCo (bench/bench_gpu.py)"
if [ "$CPU" = 1 ]; then
  timeout 120 "$PYBIN" bench/bench_gpu.py --device cpu --only "ensemble BCE+DisCo" --members 4 --steps 1 \
    --batch 256 || status=1
else
  timeout 120 "$PYBIN" bench/bench_gpu.py --only "ensemble+compiled+bf16 BCE+DisCo" --members 12 --steps 10 \
    || status=1
fi
step "done, status $status"
exit $status
