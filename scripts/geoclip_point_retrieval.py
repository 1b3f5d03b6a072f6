"""Sanity figure for geovec-mini's GeoCLIP point tower, with no training: point -> point retrieval.

    python scripts/geoclip_point_retrieval.py

For each point of a set, the others are ranked by cosine of their raw 512-d GeoCLIP features; reported is the rank
of its geographically nearest point (1 = best), beside the same for MiniLM's vectors of the ``<loc>`` text (how
points reach geovec-mini without the tower) and random vectors. Sets: a deterministic global Fibonacci lattice
(200 points) and the 102 RSVQA-LR tile centres (Netherlands/Belgium) from the shared data.
"""
import numpy as np
import torch

from geovec.config import data_dir
from geovec.datasets.geo import read_tiles
from geovec.inputs import Interleaved, PointSegment
from geovec.models import load_model
from geovec.models.geoclip_location import location_features


def kilometres(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    la1, lo1, la2, lo2 = (np.radians(v) for v in (a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1]))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(h))


def nearest_ranks(points: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    distance, similarity = kilometres(points, points), vectors @ vectors.T
    np.fill_diagonal(distance, np.inf)
    np.fill_diagonal(similarity, -np.inf)
    nearest = distance.argmin(1)
    return np.array([(similarity[i] > similarity[i, j]).sum() + 1 for i, j in enumerate(nearest)])


def fibonacci(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    return np.stack([np.degrees(np.arcsin(1 - 2 * i / n)),
                     (np.degrees(np.pi * (1 + 5 ** 0.5) * i) + 180) % 360 - 180], axis=1)


def main() -> None:
    minilm, rng = load_model("minilm"), np.random.default_rng(0)
    sets = {"global Fibonacci lattice": fibonacci(200),
            "RSVQA-LR tile centres": np.array([(t.lat, t.lon) for t in read_tiles(data_dir() / "rsvqa_lr")])}
    for name, points in sets.items():
        geoclip = torch.nn.functional.normalize(location_features(torch.tensor(points, dtype=torch.float32)), dim=1)
        text = minilm.encode([Interleaved((PointSegment(float(lat), float(lon)),)) for lat, lon in points])
        spacing = np.median(np.sort(kilometres(points, points), axis=1)[:, 1])
        print(f"{name}: {len(points)} points, median nearest-neighbour distance {spacing:.1f} km")
        for label, vectors in (("GeoCLIP features", geoclip.numpy()), ("MiniLM <loc> text", text),
                               ("random", rng.standard_normal((len(points), 8)))):
            r = nearest_ranks(points, vectors)
            print(f"  {label:18s} rank of the nearest point: mean {r.mean():6.2f}, median {np.median(r):3.0f}, "
                  f"top-1 {np.mean(r == 1):.2f}, top-5 {np.mean(r <= 5):.2f} (of {len(points) - 1})")


if __name__ == "__main__":
    main()
