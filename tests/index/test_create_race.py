"""Two real processes creating the same new index folder at once: every record of both lands, or one is refused.

Each worker process runs every trial, the two meeting at a barrier before each create, so the race is real and the
suite pays for two interpreter starts, not 2 x TRIALS (100 trials: about 2.5 s; GEOVEC_RACE_TRIALS changes it).
"""

import multiprocessing
import os
from pathlib import Path

import numpy as np

from geovec.index import Record, VectorIndex
from geovec.index.base import IndexExistsError

TRIALS, RECORDS, DIM = int(os.environ.get("GEOVEC_RACE_TRIALS", "100")), 200, 8


def _writer(root: str, name: str, exist_ok: bool, barrier, results) -> None:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    outcomes = []
    for trial in range(TRIALS):
        barrier.wait(timeout=60)
        try:
            store = VectorIndex.create(Path(root) / f"trial-{trial}", DIM, model={"name": "test"}, exist_ok=exist_ok)
        except IndexExistsError:
            outcomes.append("refused")
            continue
        with store:
            vectors = rng.normal(size=(RECORDS, DIM)).astype(np.float32)
            store.add([Record(id=f"{name}-{i}") for i in range(RECORDS)], vectors / np.linalg.norm(vectors, axis=1,
                                                                                                   keepdims=True))
        outcomes.append("added")
    results.put((name, outcomes))


def _race(root: Path, exist_ok: bool) -> dict[str, list[str]]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as two users' commands would be
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_writer, args=(str(root), name, exist_ok, barrier, results))
               for name in ("a", "b")]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return outcomes


def test_two_writers_creating_one_new_index_both_land_every_record(tmp_path):
    outcomes = _race(tmp_path, exist_ok=True)
    assert outcomes == {"a": ["added"] * TRIALS, "b": ["added"] * TRIALS}
    for trial in range(TRIALS):
        with VectorIndex.open(tmp_path / f"trial-{trial}") as store:
            assert len(store) == 2 * RECORDS, f"trial {trial} lost records"


def test_without_exist_ok_exactly_one_creates_and_the_other_is_refused(tmp_path):
    outcomes = _race(tmp_path, exist_ok=False)
    for trial in range(TRIALS):
        assert sorted([outcomes["a"][trial], outcomes["b"][trial]]) == ["added", "refused"]
        with VectorIndex.open(tmp_path / f"trial-{trial}") as store:
            assert len(store) == RECORDS, f"trial {trial}: the creator's records were lost"
