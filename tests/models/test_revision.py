"""A checkpoint's revision names its weights: two trainings of one architecture (weight files of equal size) never
share vectors in the embedding cache, so a benchmark of one never reports the other's scores."""

from __future__ import annotations

import numpy as np
import torch

from geovec.inputs import as_input
from geovec.models.base import checkpoint_revision
from geovec.models.cache import EmbeddingCache
from geovec.models.mini import GeovecMini
from geovec.models.trainable import EncoderEmbedder

TINY = {"num_layers": 2, "image_size": 64, "patch_size": 16, "stem_widths": (16, 32)}


def test_two_checkpoints_of_one_architecture_get_their_own_revisions_and_cached_vectors(tmp_path):
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = GeovecMini.initial(**TINY)
        with torch.no_grad():
            dense = model.bert.encoder.layer[0].intermediate.dense.weight  # another "training" of the same shapes
            dense.add_(seed * torch.randn_like(dense))
        folders.append(model.save(tmp_path / f"run-{seed}"))
    sizes = [sorted((p.name, p.stat().st_size) for p in folder.iterdir()) for folder in folders]
    assert sizes[0] == sizes[1]  # what the old fingerprint (names and sizes) could not tell apart
    assert checkpoint_revision(folders[0]) != checkpoint_revision(folders[1])
    assert checkpoint_revision(folders[0]) == checkpoint_revision(tmp_path / "run-0")  # stable for one folder

    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = [as_input("a harbour with many boats"), as_input("a dense forest")]
    cached = [cache.encode(EncoderEmbedder.from_folder(folder, "geovec-mini"), texts) for folder in folders]
    own = EncoderEmbedder.from_folder(folders[1], "geovec-mini").encode(texts)
    np.testing.assert_allclose(cached[1], own, atol=1e-5)
    assert not np.allclose(cached[0], cached[1], atol=1e-3)
    assert cache.stats.hits == 0
