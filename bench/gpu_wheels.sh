#!/usr/bin/env bash
# Wheels for a GPU machine that cannot reach PyPI but has PyTorch (bench/gpu_check.sh uses its python3):
# downloads, here, the packages that the GPU check imports and such an image lacks, into .whl/ (git-ignored),
# for that machine's Python (PYVER, default 3.12) on x86-64 Linux, at the versions of this checkout's .venv
# where it has them. Carry .whl/ to the machine; gpu_check.sh installs what it finds there (no index, no deps).
#
#   bash bench/gpu_wheels.sh            # PYVER=3.11 bash bench/gpu_wheels.sh for another Python
#
# The packages: awkward and its compiled half awkward-cpp (hzg.data reads objects with it), uproot and its
# compression library cramjam (hzg.io). The rest of what the check imports (numpy, pandas, pyarrow, PyYAML,
# tqdm, pytest, PyTorch) is in the image.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
PACKAGES=(awkward awkward-cpp uproot cramjam)
pinned=()
for name in "${PACKAGES[@]}"; do
  version=$(.venv/bin/python -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
  pinned+=("$name${version:+==$version}")
done
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pinned[@]}"
ls -l .whl
