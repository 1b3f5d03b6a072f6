"""BertModel's encoder forward pass for inference, lean enough for small query batches on a CPU.

Why: embedding a handful of short queries (the server's batches) is most of a search's time. At ~30 tokens a
sequence, transformers' BertModel spends ~15 % of it outside the matrix products: its mask preparation and module
calls, and above all its CPU attention kernel (SDPA), which takes ~0.37 ms a layer for 4 short sequences against
~0.2 ms for the same attention as two batched products with a float32 softmax. ``encode_hidden`` computes the same
function as ``BertModel(inputs_embeds=..., attention_mask=...).last_hidden_state`` (tested against it in float32 and
under bfloat16 autocast) from the model's own modules, read afresh on every call: a model trained further or moved
to another precision is never served with stale weights. Where a batch is more than ``PACK_FROM`` padding, the
per-token steps skip it (shares of 4 real RSICD captions, 13 % padding: 23.6 -> 22.4 ms). It runs only where
an embedder's query pass says "lean" (``geovec.models.query_pass``: chosen by measurement and a quality check).

With an isolated instruction (``isolating_mask``: the [CLS] and instruction tokens attend only among themselves),
what those tokens compute depends on the instruction alone, so their keys, values and outputs are computed once per
instruction and reused (``encode_hidden``'s ``prefix``): a text query then costs only its own tokens.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


PACK_FROM = 0.06  # the share of padding from which packing the real tokens pays (measured: 3.6 % lost 1.6 %)


def supports(bert: nn.Module) -> bool:
    """Whether ``encode_hidden`` computes what ``bert`` does: a plain BERT encoder (absolute positions, GELU, no
    cross-attention); anything else keeps transformers' forward."""
    config: Any = getattr(bert, "config", None)
    return (config is not None and type(bert).__name__ == "BertModel"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and config.hidden_act == "gelu" and not config.is_decoder and not config.add_cross_attention)


def isolating_mask(mask: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """The attention mask [batch, from, to] (1: may attend) where every real token attends to every real token,
    except that a row's first ``prefix[row]`` tokens (its [CLS] and instruction) attend only among themselves."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    inside = positions[None, :] < prefix[:, None]
    return (mask[:, None, :].bool() & ~(inside[:, :, None] & ~inside[:, None, :])).to(mask.dtype)


@dataclass
class _Given:
    """States of positions that are not computed (isolated prefixes): the flat positions (batch*tokens) they
    fill, and per layer their key and value projections, then their outputs; each [positions, hidden]."""

    rows: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    hidden: torch.Tensor


_DERIVED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
_MAX_DERIVED = 512  # prefix states (per instruction and dtype) and cast weights kept per model


def _linear(x: torch.Tensor, layer: nn.Linear, dtype: torch.dtype | None, derived: dict) -> torch.Tensor:
    """The layer in ``dtype`` (autocast's), else in its weights' dtype; weights cast to ``dtype`` once for the
    model's current weights (kept in ``derived``), not on every call as autocast would (~5 % of a small batch)."""
    dtype = dtype or layer.weight.dtype
    bias = None if layer.bias is None else _cast(layer.bias, dtype, derived)
    return F.linear(x.to(dtype), _cast(layer.weight, dtype, derived), bias)


def _cast(tensor: torch.Tensor, dtype: torch.dtype, derived: dict) -> torch.Tensor:
    if tensor.dtype == dtype:
        return tensor
    key = ("cast", id(tensor), dtype)
    if key not in derived:
        derived[key] = tensor.detach().to(dtype)
    return derived[key]


def _norm(x: torch.Tensor, layer: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)


def encode_hidden(bert: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, prefix: torch.Tensor | None = None,
                  ids: torch.Tensor | None = None) -> torch.Tensor:
    """The last hidden state (float32) of ``bert`` (see ``supports``) for input embeddings ``embeds`` [batch,
    tokens, hidden] and attention ``mask`` [batch, tokens] (1: a real token); padding rows' values are undefined.
    With ``prefix`` [batch] (and the token ``ids`` [batch, tokens] that name each prefix), attention follows
    ``isolating_mask`` and each distinct prefix is computed once for the model's current weights.

    Linear layers compute as autocast would (in its dtype where it is on); everything else in float32, with
    autocast off: under it the attention's products would run in bfloat16 and its softmax cast back, both slower.
    """
    device = embeds.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    with torch.autocast(device, enabled=False):
        cache = _derived(bert)
        if prefix is None or not bool((prefix > 0).any()):
            return _encode(bert, embeds, mask, dtype, cache)
        if ids is None:
            raise ValueError("encode_hidden: a prefix needs the token ids that name it")
        batch, length, _ = embeds.shape
        rows, states = [], []
        for row, size in enumerate(prefix.tolist()):
            if size:
                key = ("prefix", tuple(ids[row, :size].tolist()), dtype)
                if key not in cache:  # computed alone: it attends only to itself
                    cache[key] = _prefix_states(bert, embeds[row:row + 1, :size], dtype, cache)
                states.append(cache[key])
                rows.append(torch.arange(size, device=embeds.device) + row * length)
        layers = range(len(states[0][0]))
        given = _Given(torch.cat(rows), [torch.cat([s[0][n] for s in states]) for n in layers],
                       [torch.cat([s[1][n] for s in states]) for n in layers], torch.cat([s[2] for s in states]))
        return _encode(bert, embeds, mask, dtype, cache, given=given)


def _derived(bert: nn.Module) -> dict:
    """What is computed from ``bert``'s weights as they are now (prefix states by token ids and dtype, weights cast
    to bfloat16): any change to a parameter (training, loading) changes its storage or version counter, and that
    drops all of it."""
    stamp = tuple((p.data_ptr(), p._version) for p in bert.parameters())
    cache = _DERIVED.setdefault(bert, {})
    if cache.get("stamp") != stamp or len(cache) > _MAX_DERIVED:
        cache.clear()
        cache["stamp"] = stamp
    return cache


def _prefix_states(bert: nn.Module, embeds: torch.Tensor, dtype: torch.dtype | None, derived: dict
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """One prefix's per-layer keys and values and its outputs, for its ``embeds`` [1, tokens, hidden] alone."""
    collected: list[tuple[torch.Tensor, torch.Tensor]] = []
    hidden = _encode(bert, embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device), dtype,
                     derived, collect=collected)
    return [k for k, _ in collected], [v for _, v in collected], hidden[0]


def _encode(bert: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype | None, derived: dict,
            given: _Given | None = None, collect: list | None = None) -> torch.Tensor:
    """``derived``: ``_derived(bert)``; ``given``: states of positions not to compute (packed away, their keys and values filled in);
    ``collect``: receives each layer's key and value projections (of a batch without padding)."""
    batch, length, hidden = embeds.shape
    heads = bert.config.num_attention_heads
    size = hidden // heads
    device = embeds.device
    parts = bert.embeddings
    x = (embeds.float() + parts.position_embeddings.weight[:length].float()
         + parts.token_type_embeddings.weight[0].float())
    # From PACK_FROM padding on, every per-token step runs on the real tokens only (packed); below it the index
    # copies that packing takes cost more than they save
    real = mask.reshape(-1) != 0
    if given is not None:
        real[given.rows] = False  # and always packed: an instruction is over half a short query's tokens
    padded = 1 - int(real.sum()) / real.numel()
    keep = real.nonzero().squeeze(1) if padded >= PACK_FROM or given is not None else None
    x = x.reshape(-1, hidden)
    x = _norm(x if keep is None else x.index_select(0, keep), parts.LayerNorm)
    # padding keys get -inf; every row keeps at least its [CLS] key, so no softmax row is all -inf
    bias = torch.zeros((batch, 1, 1, length), device=device)
    bias = bias.masked_fill_(mask[:, None, None, :] == 0, float("-inf"))
    bias = bias.expand(batch, heads, length, length).reshape(batch * heads, length, length)

    def unpack(tokens: torch.Tensor) -> torch.Tensor:
        """[tokens, hidden] as computed -> [batch*length, hidden], zeros at padding that was packed away."""
        if keep is None:
            return tokens
        return tokens.new_zeros((batch * length, hidden)).index_copy_(0, keep, tokens)

    def split(projection: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """-> float32 [batch*heads, length, size] for the attention's batched products, transposed in one copy;
        ``fill``: the given positions' values."""
        rows = unpack(projection)
        if fill is not None:
            rows.index_copy_(0, given.rows, fill.to(rows.dtype))
        heads_first = rows.view(batch, length, heads, size).transpose(1, 2)
        float32 = torch.empty(heads_first.shape, dtype=torch.float32, device=device)
        return float32.copy_(heads_first).view(-1, length, size)

    for number, layer in enumerate(bert.encoder.layer):
        attention = layer.attention.self
        inputs = x.to(dtype or attention.query.weight.dtype)  # cast once for the three projections
        query, key, value = (_linear(inputs, part, dtype, derived) for part in (attention.query, attention.key,
                                                                                 attention.value))
        if collect is not None:
            collect.append((key, value))
        query = split(query)
        key = split(key, given.keys[number] if given else None)
        value = split(value, given.values[number] if given else None)
        weights = torch.baddbmm(bias, query, key.transpose(1, 2), alpha=size ** -0.5).softmax(-1)
        context = torch.bmm(weights, value).view(batch, heads, length, size).transpose(1, 2)
        if keep is None:  # to [tokens, hidden] in the linear's dtype, in one copy
            context = torch.empty(context.shape, dtype=inputs.dtype, device=device).copy_(context).view(-1, hidden)
        else:
            context = context.reshape(-1, hidden).index_select(0, keep)
        attended = _linear(context, layer.attention.output.dense, dtype, derived)
        x = _norm(torch.add(x, attended), layer.attention.output.LayerNorm)
        inner = F.gelu(_linear(x, layer.intermediate.dense, dtype, derived))
        x = _norm(torch.add(x, _linear(inner, layer.output.dense, dtype, derived)), layer.output.LayerNorm)
    out = unpack(x)
    if given is not None:
        out.index_copy_(0, given.rows, given.hidden.to(out.dtype))
    return out.view(batch, length, hidden)
