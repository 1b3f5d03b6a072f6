"""Aggregating description similarities per image, with and without the leave-one-out exclusion."""

import numpy as np
import pytest

from geovec.t2t import image_scores


def brute(queries, descriptions, owner, n_images, aggregation, exclude):
    out = np.zeros((n_images, len(queries)))
    for q, query in enumerate(queries):
        for image in range(n_images):
            members = [d for d in np.flatnonzero(owner == image) if d != exclude[q]]
            vectors = descriptions[members]
            sims = vectors @ query
            if aggregation == "max":
                out[image, q] = sims.max()
            elif aggregation == "mean":
                out[image, q] = sims.mean()
            elif aggregation == "max-mean":
                out[image, q] = (sims.max() + sims.mean()) / 2
            else:
                centroid = vectors.sum(axis=0)
                out[image, q] = centroid @ query / np.linalg.norm(centroid)
    return out


@pytest.mark.parametrize("aggregation", ["max", "mean", "centroid", "max-mean"])
def test_matches_brute_force_with_leave_one_out(aggregation):
    rng = np.random.default_rng(0)
    descriptions = rng.standard_normal((15, 8)).astype(np.float32)
    descriptions /= np.linalg.norm(descriptions, axis=1, keepdims=True)
    owner = np.repeat(np.arange(5), 3)
    rng.shuffle(owner)
    queries = descriptions.copy()  # the oracle setting: every description is also a query...
    exclude = np.arange(15)        # ...and must not represent its own image
    exclude[3] = -1                # one query without exclusion
    got = image_scores(queries, descriptions, owner, 5, aggregation, exclude)
    np.testing.assert_allclose(got, brute(queries, descriptions, owner, 5, aggregation, exclude), atol=1e-5)


def test_hand_computed_max_and_mean():
    descriptions = np.array([[1, 0], [0, 1], [1, 0]], np.float32)  # image 0: d0, d1; image 1: d2
    query = np.array([[1, 0]], np.float32)
    assert image_scores(query, descriptions, np.array([0, 0, 1]), 2, "max").ravel().tolist() == [1.0, 1.0]
    assert image_scores(query, descriptions, np.array([0, 0, 1]), 2, "mean").ravel().tolist() == [0.5, 1.0]
    excluded = image_scores(query, descriptions, np.array([0, 0, 1]), 2, "max", exclude=np.array([0]))
    assert excluded.ravel().tolist() == [0.0, 1.0]  # without d0, image 0 only has the orthogonal d1
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        image_scores(query, descriptions, np.array([0, 0, 1]), 2, "median")
