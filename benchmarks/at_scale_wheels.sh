#!/usr/bin/env bash
# Download the wheels that benchmarks/at_scale.py needs on the 16-core device machine into .whl/.
#
# That machine's python3 (3.12, x86-64, no network) holds numpy, scipy, networkx, pyyaml,
# matplotlib, threadpoolctl and PyTorch, but not simpy or pydantic. pydantic pins pydantic-core
# exactly and needs typing-extensions >= 4.16 (newer than the one there), so all five travel, at
# the versions the test suite runs here. pip matches each manylinux tag exactly, hence the list.
#
# Run from the repository root:   bash benchmarks/at_scale_wheels.sh
# Then carry ".whl" and begin the command there with (see benchmarks/at_scale.py):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
# .whl/ is in .gitignore: wheels are never committed.
set -euo pipefail

PYTHON=${PYTHON:-python3}
DEST=${DEST:-.whl}
PACKAGES=(
    simpy==4.1.2
    pydantic==2.14.4
    pydantic-core==2.50.5
    annotated-types==0.8.0
    typing-inspection==0.4.5
    typing-extensions==4.16.0
)

mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: two would stop the whole install there
for package in "${PACKAGES[@]}"; do
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$DEST" "$package"
done
ls -l "$DEST"
du -ch "$DEST"/*.whl | tail -n 1
