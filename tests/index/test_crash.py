"""A writer killed with SIGKILL mid-ingest loses no committed batch and leaves no partial one."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from geovec.index import Record, VectorIndex

BATCH, DIM, COMMITTED = 40, 24, 5

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from geovec.index import Record, VectorIndex

    def batch_vectors(number):
        vectors = np.random.default_rng(number).standard_normal((BATCH, DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    index = VectorIndex.open(sys.argv[1])
    number = 1
    while True:
        index.add([Record(id=f"b{number}-{i}", captions=[str(number)]) for i in range(BATCH)], batch_vectors(number))
        print(number, flush=True)
        number += 1
""")


def batch_vectors(number):
    vectors = np.random.default_rng(number).standard_normal((BATCH, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_killed_writer_leaves_exactly_the_committed_batches(tmp_path):
    path = tmp_path / "idx"
    with VectorIndex.create(path, DIM) as index:  # batch 0 with a graph and a vector cache, so both go stale
        index.add([Record(id=f"b0-{i}") for i in range(BATCH)], batch_vectors(0))
        index.build_ann(M=8, ef_construction=40)
    source = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    script = f"BATCH, DIM = {BATCH}, {DIM}\n{WRITER}"
    writer = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        lines = [writer.stdout.readline() for _ in range(COMMITTED)]
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert [int(line) for line in lines] == list(range(1, COMMITTED + 1))

    with VectorIndex.open(path) as index:
        count = len(index)
        batches = count // BATCH
        assert count % BATCH == 0 and batches >= COMMITTED + 1
        assert sorted(index.ids()) == sorted(f"b{b}-{i}" for b in range(batches) for i in range(BATCH))
        last = batches - 1
        for exact in (True, False):
            hit = index.search(batch_vectors(last)[7], k=1, exact=exact)[0]
            assert hit.id == f"b{last}-7" and hit.record.captions == [str(last)]
        index.add([Record(id="after")], batch_vectors(99)[:1])
        assert len(index) == count + 1 and index.search(batch_vectors(99)[0], k=1)[0].id == "after"
