"""Which number formats this machine computes fast: what query embedding's "auto" precision picks.

Why: on a CPU with AVX512-BF16 or AMX (and CUDA GPUs from Ampere on) bfloat16 matrix products run natively, at
about twice the speed of float32 for the same bytes; elsewhere torch emulates them, slower than float32.

``GEOVEC_CPU_BF16=0`` makes "auto" treat the CPU as having no native bfloat16 (``=1``: as having it), whatever the
probe says, so a run capped with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` behaves as on an AVX2-only CPU
(``scripts/test_capped.sh``). It is read once per process.
"""

from __future__ import annotations

import functools
import os

from geovec.errors import GeovecInputError

PRECISIONS = ("auto", "float32", "bfloat16")
CPU_BF16_SWITCH = "GEOVEC_CPU_BF16"


@functools.cache
def native_bfloat16(device_type: str) -> bool:
    """Whether bfloat16 matrix products run natively on ``device_type`` ("cpu", "cuda") here."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    forced = _cpu_bfloat16_switch()
    if forced is not None:
        return forced
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def _cpu_bfloat16_switch() -> bool | None:
    """``GEOVEC_CPU_BF16`` as a decision (None when unset); any value but 0 or 1 is refused, not guessed."""
    value = os.environ.get(CPU_BF16_SWITCH, "").strip()
    if value not in ("", "0", "1"):
        raise GeovecInputError(CPU_BF16_SWITCH, f"is {value!r}; set 0 (treat bfloat16 as absent on this CPU), "
                                                "1 (as native) or unset it")
    return None if value == "" else value == "1"
