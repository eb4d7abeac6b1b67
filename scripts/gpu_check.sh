#!/usr/bin/env bash
# The GPU check in one command (docs/gpu.md): scripts/gpu_check.py with a Python that has torch, ractd from src/.
#
#   scripts/gpu_check.sh                      # results/gpu/gpu_check.{json,txt,log}, cuda_tests.xml
#   scripts/gpu_check.sh --out "$OUT"         # anywhere else
#   PYTHON=/path/to/python scripts/gpu_check.sh --only latency
#
# The Python is $PYTHON if set, else the repository's .venv if it exists, else python3. ractd is imported from
# src/ (no installation needed); numpy, safetensors, h5py, rich, pytest (and onnx, onnxruntime for the export
# test) must be importable by that Python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$py" scripts/gpu_check.py "$@"
