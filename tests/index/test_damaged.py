"""A damaged database and text SQLite cannot store: a GeovecError naming the index or field, never sqlite3's own."""

import os

import numpy as np
import pytest

from geovec.errors import GeovecIndexError, GeovecInputError
from geovec.index import Record, VectorIndex

DIM = 32


def _unit(rows: int) -> np.ndarray:
    vectors = np.random.default_rng(0).normal(size=(rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_database_damaged_in_the_middle_is_refused_when_searched(tmp_path):
    with VectorIndex.create(tmp_path / "idx", DIM) as store:
        store.add([Record(id=f"item-{n}", captions=["a port"]) for n in range(3000)], _unit(3000))
    (tmp_path / "idx" / "vectors.npz").unlink(missing_ok=True)  # so the search reads the vectors from SQLite
    database = tmp_path / "idx" / "index.sqlite"
    with database.open("r+b") as handle:  # meta (page 2) intact, so it opens; the item pages are garbage
        handle.seek(os.path.getsize(database) // 2)
        handle.write(np.random.default_rng(1).bytes(200_000))
    refused = pytest.raises(GeovecIndexError, match=f"cannot read index {tmp_path / 'idx'}: database disk image is "
                                                    "malformed .*rebuild the index")
    with VectorIndex.open(tmp_path / "idx") as store, refused:
        store.search(_unit(1)[0], k=3)


@pytest.mark.parametrize("record, field", [
    (Record(id="caf\ud800"), "records[0].id"),
    (Record(id="ok", captions=["a \udce9 port"]), "records[0].captions[0]"),
    (Record(id="ok", extra={"note": "\ud83d"}), "records[0].extra"),
], ids=["id", "caption", "extra"])
def test_lone_surrogates_are_refused_naming_the_field_and_nothing_is_stored(tmp_path, record, field):
    with VectorIndex.create(tmp_path / "idx", DIM) as store:
        with pytest.raises(GeovecInputError, match=r"not valid UTF-8 \(lone surrogate U\+D8|not valid UTF-8 \(byte 0xe9") as refused:
            store.add([Record(id="fine"), record], _unit(2))
        assert refused.value.field == field.replace("[0]", "[1]", 1) and len(store) == 0
