"""The float32 tolerance helper: passes what reordering a sum does, fails what a bug does."""

from __future__ import annotations

import numpy as np
from tolerances import float32_close

TERMS = 4096


def _products() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((16, TERMS)).astype(np.float32), rng.standard_normal((TERMS, 8)).astype(np.float32)


def test_sums_in_another_order_are_close_even_where_the_result_is_near_zero():
    a, b = _products()
    whole = a @ b
    blocked = sum(a[:, i:i + 7] @ b[i:i + 7] for i in range(0, TERMS, 7))  # other blocks, other rounding
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert not np.array_equal(whole, blocked)
    assert float32_close(blocked, whole, terms=TERMS) and float32_close(whole, exact, terms=TERMS)


def test_a_wrong_sign_a_dropped_term_or_a_wrong_scale_is_not_close():
    a, b = _products()
    whole = a @ b
    assert not float32_close(-whole, whole, terms=TERMS)
    assert not float32_close(a[:, 1:] @ b[1:], whole, terms=TERMS)
    assert not float32_close(whole * 1.001, whole, terms=TERMS)
