"""Contrastive losses (sentence-transformers style): InfoNCE with in-batch and hard negatives, and its GradCache form.

Both take the *items* of a batch (``[queries, positives]`` or ``[queries, positives, negatives]``, lists of
``Interleaved``) plus the encoder, because GradCache has to prepare and embed its own mini-batches. ``model`` is
what runs the forward pass (the encoder itself, or the wrapper ``accelerate`` made of it for DDP/FSDP/mixed
precision); ``encoder.prepare`` is always called on the bare encoder.

Under several processes (``accelerate launch``), ``gather_across_processes`` scores every process's queries
against the positives and hard negatives of *all* processes (a differentiable all-gather), so the negatives are
those of the global batch, as on one device; the learnable temperature's gradient is averaged by
``average_gradients_across_processes`` because it lives outside the DDP-wrapped model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import get_device_states, set_device_states

from geovec.inputs import Interleaved
from geovec.models.trainable import TrainableEncoder

Features = Sequence[Sequence[Interleaved]]


@dataclass
class ContrastiveOutput:
    loss: Tensor
    accuracy: Tensor  # in-batch top-1: the query's own positive scores highest among all candidates
    temperature: Tensor


def _on_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGather(torch.autograd.Function):
    """``all_gather`` whose backward sums every process's gradient for each part and hands each its own."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads: Tensor) -> Tensor:  # type: ignore[override]
        summed = torch.stack(grads).contiguous()
        dist.all_reduce(summed)
        return summed[dist.get_rank()]


def gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """Every process's rows of ``x`` concatenated in rank order (sizes may differ), and where this process's rows
    start. Gradients flow back to each process's own rows."""
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(x)], dtype=torch.long, device=x.device))
    counts = [int(size) for size in sizes]
    if torch.is_grad_enabled() and not x.requires_grad:
        x = x.detach().requires_grad_()  # so every process runs the backward collective, in the same order
    parts = _AllGather.apply(F.pad(x, (0, 0, 0, max(counts) - len(x))))
    return torch.cat([part[:count] for part, count in zip(parts, counts)]), sum(counts[:dist.get_rank()])


class InfoNCELoss(nn.Module):
    """InfoNCE over normalised embeddings: every query against all positives in the batch plus the hard negatives.

    ``symmetric`` adds the positive -> query direction (over the batch's queries), as in CLIP. The temperature is
    fixed, or learnable as ``log(t)`` clamped to ``[min_temperature, max_temperature]`` (CLIP's logit-scale
    parameterisation), so it can neither explode nor collapse.
    """

    def __init__(self, temperature: float = 0.05, learnable_temperature: bool = False, symmetric: bool = True,
                 min_temperature: float = 0.005, max_temperature: float = 1.0,
                 gather_across_processes: bool = True) -> None:
        super().__init__()
        if not 0 < min_temperature <= temperature <= max_temperature:
            raise ValueError(f"need 0 < min_temperature <= temperature <= max_temperature, got "
                             f"{min_temperature}, {temperature}, {max_temperature}")
        self.symmetric = symmetric
        self.gather_across_processes = gather_across_processes
        self.bounds = (math.log(min_temperature), math.log(max_temperature))
        log_t = torch.tensor(math.log(temperature))
        if learnable_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.clamp(*self.bounds).exp()

    def score(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> ContrastiveOutput:
        """The loss from normalised ``(B, d)`` queries and positives and ``(N, d)`` hard negatives."""
        t = self.temperature
        if negatives is None:
            negatives = queries.new_zeros((0, queries.shape[1]))
        all_queries, all_positives, offset = queries, positives, 0
        if self.gather_across_processes and _distributed():  # every process gathers, negatives or not
            all_queries, _ = gather_rows(queries)
            all_positives, offset = gather_rows(positives)
            negatives, _ = gather_rows(negatives)
        logits = queries @ torch.cat([all_positives, negatives]).T / t
        labels = torch.arange(len(queries), device=queries.device) + offset
        loss = F.cross_entropy(logits, labels)
        if self.symmetric:
            loss = (loss + F.cross_entropy(positives @ all_queries.T / t, labels)) / 2
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return ContrastiveOutput(loss, accuracy, t.detach())

    def average_gradients_across_processes(self) -> None:
        """Average the learnable temperature's gradient over processes (DDP averages only the model's)."""
        if not _distributed():
            return
        for parameter in self.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= dist.get_world_size()

    def forward(self, features: Features, encoder: TrainableEncoder, model: Callable | None = None) -> ContrastiveOutput:
        model = model or encoder
        reps = [F.normalize(model(_on_device(encoder.prepare(items), encoder.device)), dim=-1)
                for items in features if len(items)]
        return self.score(*reps)


class RandContext:
    """Captures the CPU and CUDA RNG states at creation and restores them on entry, so a replayed forward pass
    draws the same dropout masks (from sentence-transformers' CachedMultipleNegativesRankingLoss)."""

    def __init__(self, *tensors: Tensor) -> None:
        self.cpu_state = torch.get_rng_state()
        self.devices, self.states = get_device_states(*tensors)

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, enabled=True)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        set_device_states(self.devices, self.states)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)


class CachedInfoNCELoss(InfoNCELoss):
    """GradCache (Gao et al., 2021): InfoNCE over a large batch with the memory of ``mini_batch_size`` inputs.

    Forward: embed every mini-batch without a graph (remembering its RNG state), score the detached embeddings.
    Backward (a hook on the returned loss, so ``accelerator.backward(loss)`` and loss scaling work unchanged):
    back-propagate the loss to the embeddings, then re-run each mini-batch with gradients under its saved RNG
    state and push the cached embedding gradients through it. Same loss and gradients as the plain loss on the
    same mini-batches, for any batch size.
    """

    def __init__(self, mini_batch_size: int = 8, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        self.mini_batch_size = mini_batch_size

    def forward(self, features: Features, encoder: TrainableEncoder, model: Callable | None = None) -> ContrastiveOutput:
        model = model or encoder
        chunks, reps = [], []
        for items in features:
            if not len(items):
                continue
            side = []
            for start in range(0, len(items), self.mini_batch_size):
                batch = _on_device(encoder.prepare(items[start:start + self.mini_batch_size]), encoder.device)
                state = RandContext(*batch.values())
                with torch.no_grad():
                    side.append(F.normalize(model(batch), dim=-1))
                chunks.append((batch, state, len(reps)))
            reps.append(torch.cat(side).detach().requires_grad_())
        with torch.enable_grad():
            inner = self.score(*reps)
        loss = inner.loss.detach().requires_grad_()
        loss.register_hook(partial(self._replay, inner=inner.loss, reps=reps, chunks=chunks, model=model))
        return ContrastiveOutput(loss, inner.accuracy, inner.temperature)

    @staticmethod
    def _replay(grad_output: Tensor, inner: Tensor, reps: list[Tensor], chunks: list, model: Callable) -> None:
        torch.autograd.backward(inner, grad_output)  # fills reps[i].grad (and the temperature's gradient)
        offsets = [0] * len(reps)
        with torch.enable_grad():
            for batch, state, side in chunks:
                with state:
                    embedded = F.normalize(model(batch), dim=-1)
                start = offsets[side]
                offsets[side] += len(embedded)
                torch.autograd.backward(embedded, reps[side].grad[start:offsets[side]])
