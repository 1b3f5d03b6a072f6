"""The lean BERT inference pass computes what transformers' BertModel computes (randomly initialised small BERTs:
the real forward pass, padding included)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from geovec.models.bert_inference import encode_hidden, isolating_mask, supports


def _bert(**changes) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=40, **changes)
    return BertModel(config, add_pooling_layer=False).eval()


MASKS = {  # lengths of 3 sequences of 17 tokens: much padding (packed away), a little (kept), none
    "packed": (17, 9, 3), "padded": (17, 16, 17), "full": (17, 17, 17)}


def _inputs(bert: BertModel, lengths: tuple[int, ...] = MASKS["packed"]) -> tuple[torch.Tensor, torch.Tensor]:
    embeds = torch.randn(len(lengths), 17, bert.config.hidden_size)
    mask = torch.zeros(len(lengths), 17, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return embeds, mask


def _reference(bert: BertModel, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state.float()


@pytest.mark.parametrize("lengths", MASKS.values(), ids=MASKS.keys())
def test_matches_bert_model_in_float32_on_real_tokens(lengths):
    bert = _bert()
    embeds, mask = _inputs(bert, lengths)
    with torch.inference_mode():
        ours = encode_hidden(bert, embeds, mask)
    real = mask.bool()
    assert torch.allclose(ours[real], _reference(bert, embeds, mask)[real], atol=2e-5)


@pytest.mark.parametrize("lengths", MASKS.values(), ids=MASKS.keys())
def test_matches_bert_model_under_bfloat16_autocast_with_bfloat16_weights(lengths):
    bert = _bert()
    embeds, mask = _inputs(bert, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = _reference(bert, embeds, mask)
        for module in bert.modules():  # bfloat16 weights: the lean pass computes in them as well
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
        with torch.inference_mode():
            ours = encode_hidden(bert, embeds, mask)
    real = mask.bool()
    assert ours.dtype == torch.float32 and torch.allclose(ours[real], reference[real], atol=5e-3)


def test_padding_does_not_change_a_sequence():
    bert = _bert()
    embeds, mask = _inputs(bert)
    with torch.inference_mode():
        alone = encode_hidden(bert, embeds[2:, :3], mask[2:, :3])
        padded = encode_hidden(bert, embeds, mask)[2:, :3]
    assert torch.allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("changes", [{"position_embedding_type": "relative_key"}, {"hidden_act": "relu"},
                                     {"is_decoder": True}])
def test_other_berts_are_left_to_transformers(changes):
    assert supports(_bert())
    assert not supports(_bert(**changes))


def _prefixed(bert: BertModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 rows: two share a 5-token prefix, one has another (3 tokens), one none; padding in three of them."""
    embeds, mask = _inputs(bert, (17, 9, 12, 6))
    ids = torch.randint(5, 50, (4, 17))
    ids[1, :5] = ids[0, :5]
    embeds[1, :5] = embeds[0, :5]  # same prefix ids, same input embeddings
    return embeds, mask, torch.tensor([5, 5, 3, 0]), ids


def _isolated_reference(bert: BertModel, embeds, mask, prefix) -> torch.Tensor:
    with torch.inference_mode():
        return bert(inputs_embeds=embeds, attention_mask=isolating_mask(mask, prefix)).last_hidden_state.float()


def test_isolating_mask_keeps_the_prefix_to_itself():
    grid = isolating_mask(torch.tensor([[1, 1, 1, 1, 0]]), torch.tensor([2]))[0]
    assert grid.tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]


def test_prefixes_computed_once_match_bert_model_with_the_isolating_mask():
    bert = _bert()
    embeds, mask, prefix, ids = _prefixed(bert)
    with torch.inference_mode():
        first = encode_hidden(bert, embeds, mask, prefix, ids)
        again = encode_hidden(bert, embeds, mask, prefix, ids)  # the prefixes' states now come from the cache
    real = mask.bool()
    reference = _isolated_reference(bert, embeds, mask, prefix)
    assert torch.allclose(first[real], reference[real], atol=2e-5)
    assert torch.equal(first[real], again[real])
    # an isolated prefix does not see what follows it: the same in every row that has it (not so without isolation)
    assert torch.allclose(first[0, :5], first[1, :5], atol=1e-6)
    full = _reference(bert, embeds, mask)
    assert not torch.allclose(full[0, :5], full[1, :5], atol=1e-4)


def test_prefixes_under_bfloat16_autocast():
    bert = _bert()
    embeds, mask, prefix, ids = _prefixed(bert)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = _isolated_reference(bert, embeds, mask, prefix)
        with torch.inference_mode():
            ours = encode_hidden(bert, embeds, mask, prefix, ids)
    real = mask.bool()
    assert torch.allclose(ours[real], reference[real], atol=5e-3)


def test_changed_weights_are_never_served_from_stale_prefix_states():
    bert = _bert()
    embeds, mask, prefix, ids = _prefixed(bert)
    with torch.inference_mode():
        encode_hidden(bert, embeds, mask, prefix, ids)
    with torch.no_grad():
        bert.encoder.layer[0].attention.self.key.weight.mul_(1.5)  # as an optimiser step would, in place
    with torch.inference_mode():
        ours = encode_hidden(bert, embeds, mask, prefix, ids)
    real = mask.bool()
    assert torch.allclose(ours[real], _isolated_reference(bert, embeds, mask, prefix)[real], atol=2e-5)
