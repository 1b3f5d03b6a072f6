"""InfoNCE across 2 real processes (torch.distributed, gloo on CPU) equals InfoNCE on the whole batch in one.

Each process holds half the queries and positives and its own hard negatives (a different number on each, none on
one); after DDP-style gradient averaging, the loss, the encoder's gradient and the learnable temperature's
gradient must be those of the full batch, both for the plain loss and with gathering switched off (where they
must differ: the per-slice loss sees fewer negatives).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
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
    embed = lambda x: F.normalize(encoder(x), dim=-1)  # noqa: E731
    negatives = negatives[negative_rows]
    output = loss_fn.score(embed(queries[rows]), embed(positives[rows]), embed(negatives) if len(negatives) else None)
    output.loss.backward()
    return loss_fn, encoder, output.loss.detach()


def _worker(rank: int, port: int, gather: bool, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(gather: bool) -> list[tuple]:
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_worker, args=(_free_port(), gather, results), nprocs=WORLD, start_method="spawn")
    return sorted(results.get(timeout=60) for _ in range(WORLD))


@pytest.mark.timeout(180)
def test_two_processes_with_gathering_equal_one_process_on_the_whole_batch():
    loss_fn, encoder, loss = _step(slice(None), slice(None), gather=True)
    for _, rank_loss, weight_grad, temperature_grad in _run(gather=True):
        assert rank_loss == pytest.approx(float(loss), rel=1e-5)
        assert torch.allclose(torch.tensor(weight_grad), encoder.weight.grad, atol=1e-6)
        assert temperature_grad == pytest.approx(loss_fn.log_temperature.grad.item(), abs=1e-6)
    (_, loss0, _, _), (_, loss1, _, _) = _run(gather=False)
    assert loss0 == loss1 and loss0 != pytest.approx(float(loss), rel=1e-3)  # each slice alone: fewer negatives
