"""InfoNCE and its GradCache form, on a tiny randomly initialised geovec-mini (real BERT + stem, dropout on)."""

from __future__ import annotations

import math

import pytest
import torch
from tolerances import assert_float32_close, float32_close
from torch.nn import functional as F
from train_helpers import batch_tokens, largest_gradient, rsicd_pairs, tiny_encoder

from geovec.models.mini import GeovecMini
from geovec.train.losses import CachedInfoNCELoss, InfoNCELoss


@pytest.fixture(scope="module")
def encoder() -> GeovecMini:
    return tiny_encoder()


@pytest.fixture(scope="module")
def features() -> list[list]:
    examples = rsicd_pairs(7)
    return [[e.query for e in examples], [e.positive for e in examples], [e.negatives[0] for e in examples[:3]]]


def test_info_nce_is_cross_entropy_over_positives_and_hard_negatives():
    torch.manual_seed(1)
    q, p, n = (F.normalize(torch.randn(k, 8), dim=-1) for k in (4, 4, 3))
    one_way = InfoNCELoss(temperature=0.1, symmetric=False).score(q, p, n)
    logits = torch.cat([q @ p.T, q @ n.T], dim=1) / 0.1
    assert torch.allclose(one_way.loss, F.cross_entropy(logits, torch.arange(4)))
    assert one_way.accuracy == (logits.argmax(1) == torch.arange(4)).float().mean()
    both = InfoNCELoss(temperature=0.1).score(q, p, n)
    backward = F.cross_entropy(p @ q.T / 0.1, torch.arange(4))
    assert torch.allclose(both.loss, (one_way.loss + backward) / 2)


def test_learnable_temperature_is_log_parameterised_and_clamped():
    loss = InfoNCELoss(temperature=0.05, learnable_temperature=True, min_temperature=0.01, max_temperature=0.5)
    q = F.normalize(torch.randn(4, 8), dim=-1)
    loss.score(q, q).loss.backward()
    assert loss.log_temperature.grad is not None and loss.log_temperature.grad != 0
    with torch.no_grad():
        loss.log_temperature.fill_(math.log(10.0))
    assert math.isclose(float(loss.temperature.detach()), 0.5, rel_tol=1e-6)
    assert "log_temperature" in dict(loss.named_parameters())
    assert "log_temperature" not in dict(InfoNCELoss().named_parameters())  # fixed: a buffer, not trained


def _grads(encoder: torch.nn.Module, loss: InfoNCELoss) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    out.update({n: p.grad.clone() for n, p in loss.named_parameters()})
    encoder.zero_grad(set_to_none=True)
    loss.zero_grad(set_to_none=True)
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], terms: int) -> None:
    """Every parameter's gradients agree up to float32 reordering of ``terms``-long sums."""
    assert a.keys() == b.keys() and len(a) > 20
    scale = largest_gradient(a)
    for name, expected in a.items():
        assert_float32_close(b[name], expected, terms, scale, what=name)


def test_gradcache_equals_plain_loss_with_dropout_on(encoder, features):
    """Same mini-batches, same seed: identical loss and gradients only if the replay restores the RNG state."""
    encoder.train()
    options = {"temperature": 0.05, "learnable_temperature": True}
    plain, cached = InfoNCELoss(**options), CachedInfoNCELoss(mini_batch_size=3, **options)
    torch.manual_seed(7)
    reps = [torch.cat([F.normalize(encoder(encoder.prepare(side[i:i + 3])), dim=-1) for i in range(0, len(side), 3)])
            for side in features]
    expected = plain.score(*reps)
    expected.loss.backward()
    reference = _grads(encoder, plain)
    torch.manual_seed(7)
    got = cached(features, encoder)
    got.loss.backward()
    assert torch.allclose(got.loss, expected.loss, rtol=1e-5) and got.accuracy == expected.accuracy
    _assert_same(reference, _grads(encoder, cached), batch_tokens(encoder, features))
    torch.manual_seed(8)  # other dropout masks give other gradients: the comparison above is not vacuous
    cached(features, encoder).loss.backward()
    other = _grads(encoder, cached)
    terms = batch_tokens(encoder, features)
    assert not all(float32_close(other[n], reference[n], terms, largest_gradient(reference)) for n in reference)


def test_gradcache_equals_full_batch_loss_without_dropout(encoder, features):
    encoder.eval()
    plain, cached = InfoNCELoss(), CachedInfoNCELoss(mini_batch_size=2)
    expected = plain(features, encoder)
    expected.loss.backward()
    reference = _grads(encoder, plain)
    got = cached(features, encoder)
    (got.loss * 2).backward()  # the upstream gradient (e.g. a loss scale) reaches the replayed mini-batches
    assert torch.allclose(got.loss, expected.loss, rtol=1e-5)
    _assert_same({n: g * 2 for n, g in reference.items()}, _grads(encoder, cached), batch_tokens(encoder, features))
