"""InfoNCE across 2 real processes (torch.distributed, gloo on CPU) equals InfoNCE on the whole batch in one.

Each process holds half the queries and positives and its own hard negatives (a different number on each, none on
one); after DDP-style gradient averaging, the loss, the encoder's gradient and the learnable temperature's
gradient must be those of the full batch: for the plain loss on a linear encoder (and not with gathering switched
off, where the per-slice loss sees fewer negatives), and for GradCache on a tiny geovec-mini (VLM2Vec's setup:
large batches over several GPUs).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tolerances import assert_float32_close, float32_close
from torch import nn
from torch.nn import functional as F

from geovec.train.losses import InfoNCELoss

WORLD = 2
PER_RANK = 3
NEGATIVES = (2, 0)  # hard negatives held by rank 0 and rank 1


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(WORLD * PER_RANK, 6, generator=generator)
    positives = queries + 0.5 * torch.randn(WORLD * PER_RANK, 6, generator=generator)
    negatives = torch.randn(sum(NEGATIVES), 6, generator=generator)
    return queries, positives, negatives


def _step(rows: slice, negative_rows: slice, gather: bool) -> tuple[InfoNCELoss, nn.Linear, torch.Tensor]:
    torch.manual_seed(0)
    encoder = nn.Linear(6, 4)
    loss_fn = InfoNCELoss(temperature=0.1, learnable_temperature=True, gather_across_processes=gather)
    queries, positives, negatives = _data()
    embed = lambda x: F.normalize(encoder(x), dim=-1)
    negatives = negatives[negative_rows]
    output = loss_fn.score(embed(queries[rows]), embed(positives[rows]), embed(negatives) if len(negatives) else None)
    output.loss.backward()
    return loss_fn, encoder, output.loss.detach()


def _worker(rank: int, port: int, gather: bool | str, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        if gather == "gradcache":
            return _gradcache_worker(rank, results)
        start = sum(NEGATIVES[:rank])
        loss_fn, encoder, loss = _step(slice(rank * PER_RANK, (rank + 1) * PER_RANK),
                                       slice(start, start + NEGATIVES[rank]), gather)
        for parameter in encoder.parameters():  # what DDP does to the model's gradients
            dist.all_reduce(parameter.grad)
            parameter.grad /= WORLD
        loss_fn.average_gradients_across_processes()
        dist.all_reduce(loss)
        # plain lists: tensors would travel as shared memory that dies with this process
        results.put((rank, float(loss) / WORLD, encoder.weight.grad.tolist(), loss_fn.log_temperature.grad.item()))
    finally:
        dist.destroy_process_group()


GRADCACHE_PAIRS = 8  # 4 per process; the first 3 carry a hard negative, so process 1 has none
WATCHED = ("vision.convs.0.weight", "bert.encoder.layer.1.attention.self.query.weight")


def _gradcache_features(examples) -> list[list]:
    return [[e.query for e in examples], [e.positive for e in examples],
            [e.negatives[0] for i, e in enumerate(examples) if i < 3]]


def _gradcache_worker(rank: int, results) -> None:
    from train_helpers import rsicd_pairs, tiny_encoder

    from geovec.train.losses import CachedInfoNCELoss

    encoder = tiny_encoder(dropout=0.0)
    examples = rsicd_pairs(GRADCACHE_PAIRS)
    half = GRADCACHE_PAIRS // WORLD
    mine = examples[rank * half:(rank + 1) * half]
    features = _gradcache_features(mine)
    features[2] = [e.negatives[0] for i, e in enumerate(mine, start=rank * half) if i < 3]
    loss_fn = CachedInfoNCELoss(mini_batch_size=2, learnable_temperature=True)
    output = loss_fn(features, encoder)
    output.loss.backward()
    parameters = dict(encoder.named_parameters())
    for name in WATCHED:
        dist.all_reduce(parameters[name].grad)
        parameters[name].grad /= WORLD
    loss_fn.average_gradients_across_processes()
    loss = output.loss.detach().clone()
    dist.all_reduce(loss)
    results.put((rank, float(loss) / WORLD, [parameters[n].grad.tolist() for n in WATCHED],
                 loss_fn.log_temperature.grad.item()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(gather: bool | str) -> list[tuple]:
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_worker, args=(_free_port(), gather, results), nprocs=WORLD, start_method="spawn")
    return sorted(results.get(timeout=60) for _ in range(WORLD))


@pytest.mark.timeout(180)
def test_two_processes_with_gathering_equal_one_process_on_the_whole_batch():
    loss_fn, encoder, loss = _step(slice(None), slice(None), gather=True)
    terms = WORLD * PER_RANK + sum(NEGATIVES)  # each gradient sums over every row of the batch
    for _, rank_loss, weight_grad, temperature_grad in _run(gather=True):
        assert rank_loss == pytest.approx(float(loss), rel=1e-5)
        assert_float32_close(weight_grad, encoder.weight.grad, terms)
        assert float32_close(temperature_grad, loss_fn.log_temperature.grad, terms)
    (_, loss0, _, _), (_, loss1, _, _) = _run(gather=False)
    assert loss0 == loss1 and loss0 != pytest.approx(float(loss), rel=1e-3)  # each slice alone: fewer negatives


@pytest.mark.timeout(300)
def test_gradcache_over_two_processes_equals_the_plain_loss_on_the_whole_batch():
    from train_helpers import batch_tokens, largest_gradient, rsicd_pairs, tiny_encoder

    encoder = tiny_encoder(dropout=0.0)
    loss_fn = InfoNCELoss(learnable_temperature=True)
    features = _gradcache_features(rsicd_pairs(GRADCACHE_PAIRS))
    expected = loss_fn(features, encoder)
    expected.loss.backward()
    parameters = dict(encoder.named_parameters())
    terms = batch_tokens(encoder, features)
    scale = largest_gradient({name: p.grad for name, p in parameters.items() if p.grad is not None})
    for _, loss, grads, temperature_grad in _run(gather="gradcache"):
        assert loss == pytest.approx(expected.loss.item(), rel=1e-5)
        for name, grad in zip(WATCHED, grads):
            assert_float32_close(grad, parameters[name].grad, terms, scale, what=name)
        assert temperature_grad == pytest.approx(loss_fn.log_temperature.grad.item(), rel=1e-4)
