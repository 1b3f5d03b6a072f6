#!/usr/bin/env bash
# README's test command as on an AVX2-only CPU (no AVX-512, no native bfloat16), on any x86 machine:
# torch's own kernels capped at AVX2, oneDNN's (int8, bfloat16, matmul) and MKL's too, numpy's OpenBLAS on its
# Haswell (AVX2) kernels, and "auto" precision told to leave bfloat16 out of its candidates (GEOVEC_CPU_BF16=0, see
# src/geovec/precision.py). Extra arguments go to pytest (a folder, -x, -k ...).
# PYTHON overrides the interpreter (default: the checkout's .venv/bin/python, as README's command uses).
set -euo pipefail
cd "$(dirname "$0")/.."
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell \
    GEOVEC_CPU_BF16=0
python="${PYTHON:-.venv/bin/python}"
# An unknown capability is ignored by torch without a word: check the cap took, or the run proves nothing.
"$python" - <<'PY'
import sys

import torch

used = torch.backends.cpu.get_cpu_capability()
if used not in ("AVX2", "DEFAULT"):
    sys.exit(f"error: ATEN_CPU_CAPABILITY: torch still uses {used}; this torch build cannot be capped at AVX2")
PY
exec "$python" -m pytest -q "$@"
