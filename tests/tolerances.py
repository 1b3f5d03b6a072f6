"""Tolerances from float32 rounding error, so numeric tests hold on every CPU yet still catch a wrong result.

Why: two correct float32 computations of the same value (another batch shape, mini-batches vs one batch, AVX2 vs
AVX-512 kernels) add their terms in another order. Each sum of ``terms`` products then differs by about
``eps32 * sqrt(terms)`` times the size of the terms, which is the size of the largest expected value (for
normalised embeddings, 1), not of the element compared: a fixed ``atol=1e-7`` fails on elements near zero of a
tensor whose values are ~1, while a fixed ``atol=1e-5`` hides a bug in a tensor whose values are ~1e-4.
``SLACK`` absorbs the few chained sums of a forward or backward pass; a wrong sign, a dropped term or a missing
scale moves values by a sizeable fraction of their magnitude, far outside it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
SLACK = 8.0  # chained sums (a forward and a backward pass through a few layers) on top of the one sum's sqrt(terms)


def _array(value: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array, list or number (torch tensors detached, moved to the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def float32_tolerance(expected: Any, terms: int = 1, scale: float | None = None) -> tuple[float, float]:
    """``(rtol, atol)`` for float32 results that each sum ``terms`` products; ``atol`` is relative to ``scale``
    (default: the largest ``|expected|``, the size the summed terms have)."""
    rtol = SLACK * EPS32 * math.sqrt(max(terms, 1))
    magnitude = float(np.max(np.abs(_array(expected)), initial=0.0)) if scale is None else scale
    return rtol, rtol * magnitude


def float32_close(actual: Any, expected: Any, terms: int = 1, scale: float | None = None) -> bool:
    """Whether ``actual`` equals ``expected`` up to float32 reordering error (see ``float32_tolerance``)."""
    rtol, atol = float32_tolerance(expected, terms, scale)
    return bool(np.allclose(_array(actual), _array(expected), rtol=rtol, atol=atol))


def assert_float32_close(actual: Any, expected: Any, terms: int = 1, scale: float | None = None,
                         what: str = "") -> None:
    """Assert ``float32_close``, saying by how much and against which tolerance when it fails."""
    rtol, atol = float32_tolerance(expected, terms, scale)
    np.testing.assert_allclose(_array(actual), _array(expected), rtol=rtol, atol=atol, err_msg=what)
