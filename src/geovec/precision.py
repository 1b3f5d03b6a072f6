"""Which number formats this machine computes fast: what query embedding's "auto" precision picks.

Why: on a CPU with AVX512-BF16 or AMX (and CUDA GPUs from Ampere on) bfloat16 matrix products run natively, at
about twice the speed of float32 for the same bytes; elsewhere torch emulates them, slower than float32.
"""

from __future__ import annotations

import functools

PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def native_bfloat16(device_type: str) -> bool:
    """Whether bfloat16 matrix products run natively on ``device_type`` ("cpu", "cuda") here."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)
