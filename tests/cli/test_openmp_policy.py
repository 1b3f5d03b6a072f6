"""The geovec command lets idle OpenMP threads sleep, before any command loads torch or FAISS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_the_command_sets_a_passive_openmp_policy_before_torch_loads_unless_told_otherwise(given, tmp_path):
    """Spinning workers took the cores the ONNX Runtime trunk and the chip reader need in an ingest, and FAISS's
    took numpy's in exact search (a batch after a lone FAISS query 1.3-1.4x slower); a policy the user set is kept."""
    code = ("import os, sys\nfrom geovec.cli import main\nloaded = 'torch' in sys.modules or 'faiss' in sys.modules\n"
            "sys.argv = ['geovec', 'ingest', sys.argv[1]]\ntry:\n    main.main()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), loaded)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    env["GEOVEC_HOME"] = str(tmp_path / "home")
    found = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], env=env, capture_output=True,
                           text=True, check=True)
    policy, loaded = found.stdout.split()[-2:]
    assert policy == (given or "PASSIVE") and loaded == "False" and "archive not found" in found.stderr
