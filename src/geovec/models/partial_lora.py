"""Partial LoRA: low-rank updates to a BERT encoder that only some token positions pass through.

As in InternLM-XComposer2's Partial LoRA, which adds a modality without touching what the language model already
does: every linear layer of every BERT layer gets a low-rank update ``up(down(x))`` (``up`` starts at zero), added
to its output only where a per-token *gate* is 1. geovec-mini opens the gate on every token of an input that holds a
box crop or a point (gating only the crop and point tokens themselves, as XComposer2 does, learnt regions far
less: validation region caption 64.0 and refexp 71.3 at step 100 of recipes/geovec-mini-3.6.yaml), so a trained model embeds "scene + box" and coordinates in its own
way while an input without a box or a point (a whole image, a search text) is computed exactly as by the model it
started from: whole-image quality is kept by construction, not by hoping that fine-tuning leaves it alone.

The gate reaches the layers through a context variable that ``gated`` sets around one BERT forward (per thread,
so concurrent requests never see each other's gate); the updates are forward hooks on transformers' own
``nn.Linear`` modules, so the BERT's state-dict names stay those of the checkpoint.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import nn

TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")
_GATE: ContextVar[torch.Tensor | None] = ContextVar("geovec_partial_lora_gate", default=None)


class LowRankUpdate(nn.Module):
    """``gate * up(down(x))`` added to one linear layer's output (a no-op outside ``gated``)."""

    def __init__(self, linear: nn.Linear, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(linear.in_features, rank, bias=False)
        self.up = nn.Linear(rank, linear.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)  # as peft's LoRA: the update starts at zero
        nn.init.zeros_(self.up.weight)

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
        gate = _GATE.get()
        if gate is None:
            return None
        return output + gate.to(output.dtype) * self.up(self.down(inputs[0]))


class PartialLoRA(nn.Module):
    """One ``LowRankUpdate`` per linear layer named in ``TARGETS`` of each layer of ``bert``'s encoder."""

    def __init__(self, bert: nn.Module, rank: int) -> None:
        super().__init__()
        self.updates = nn.ModuleDict()
        for index, layer in enumerate(bert.encoder.layer):
            for target in TARGETS:
                linear = layer.get_submodule(target)
                update = LowRankUpdate(linear, rank)
                self.updates[f"layer{index}_{target.replace('.', '_')}"] = update
                linear.register_forward_hook(update.hook)  # a bound method: deep copies follow their own module


@contextmanager
def gated(gate: torch.Tensor | None) -> Iterator[None]:
    """Within this block, hooked layers add their updates where ``gate`` ([batch, tokens]) is 1."""
    token = _GATE.set(None if gate is None else gate.unsqueeze(-1))
    try:
        yield
    finally:
        _GATE.reset(token)
