"""The number formats a query may be embedded in, and the switch that takes bfloat16 off the table.

Why: on a CPU with AVX512-BF16 or AMX (and CUDA GPUs from Ampere on) bfloat16 matrix products run natively, at
about twice the speed of float32; elsewhere torch emulates them, slower than float32. Which one is faster is
measured on the machine at hand (``geovec.models.query_pass``), not guessed from CPU flags.

``GEOVEC_CPU_BF16=0`` treats bfloat16 as absent: it is then never a candidate, so a run capped with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` behaves as on an AVX2-only CPU (``scripts/test_capped.sh``).
``=1`` (or unset) lets it be measured like any other candidate.
"""

from __future__ import annotations

import os

from geovec.errors import GeovecInputError

PRECISIONS = ("auto", "float32", "bfloat16")
CPU_BF16_SWITCH = "GEOVEC_CPU_BF16"


def bfloat16_allowed(device_type: str = "cpu") -> bool:
    """Whether bfloat16 may be measured as a query pass on ``device_type`` here (on a CPU: ``GEOVEC_CPU_BF16``; any
    value but 0 or 1 is refused, not guessed)."""
    if device_type != "cpu":
        return True
    value = os.environ.get(CPU_BF16_SWITCH, "").strip()
    if value not in ("", "0", "1"):
        raise GeovecInputError(CPU_BF16_SWITCH, f"is {value!r}; set 0 (treat bfloat16 as absent on this CPU), "
                                                "1 (measure it as any other pass) or unset it")
    return value != "0"
