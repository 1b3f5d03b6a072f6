"""How far apart two checkpoints' RSICD test mR really are: a paired bootstrap over the test images.

    python scripts/paired_bootstrap.py A_FOLDER B_FOLDER [--resamples 2000]   (A/B: geovec-mini checkpoints;
                                                                              "shipped" for the embedded one)

Each resample draws the 1,093 test images with replacement: each drawn image is an image -> text query and brings
its 5 captions as text -> image queries, against the fixed full galleries (as `rsicd-retrieval` ranks them). Both
models are scored on the same draw, so the spread of their difference is the test split's own noise. Vectors come
from the embedding cache that `geovec bench run` filled (nothing is embedded twice). Used for
results/geovec-mini-3.2/TRAINING.md.
"""
import argparse

import numpy as np

from geovec.bench.metrics import ranks_of_best_positive
from geovec.bench.tasks import get_task
from geovec.config import data_dir
from geovec.inputs import Interleaved
from geovec.models import load_model
from geovec.models.cache import default_cache

parser = argparse.ArgumentParser()
parser.add_argument("models", nargs=2)
parser.add_argument("--resamples", type=int, default=2000)
args = parser.parse_args()

task = get_task("rsicd-retrieval")
meta, data = task.metadata, task.load(data_dir())
images = [Interleaved(i.segments, i.instruction or meta.query_instruction) for i in data.images]
texts = [Interleaved(t.segments, t.instruction or meta.candidate_instruction) for t in data.texts]
text_image = np.asarray(data.text_image)
cache = default_cache()


def hits(model_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Per query, whether a positive is in the top 1/5/10: (images, 3) for i2t, (texts, 3) for t2i."""
    model = load_model("geovec-mini", None if model_path == "shipped" else model_path)
    similarity = cache.encode(model, images, truncate=True) @ cache.encode(model, texts, truncate=True).T
    image_texts = [set(np.flatnonzero(text_image == i)) for i in range(len(images))]
    i2t_rank = ranks_of_best_positive(similarity, image_texts)  # the bench's own ranking (ties in index order)
    t2i_rank = ranks_of_best_positive(similarity.T, [{int(i)} for i in text_image])
    ks = np.asarray([1, 5, 10])
    print(f"{model_path}: {model.revision}, cache hits {cache.stats.hits}, misses {cache.stats.misses}")
    return i2t_rank[:, None] < ks, t2i_rank[:, None] < ks


def mean_recall(i2t: np.ndarray, t2i: np.ndarray, drawn: np.ndarray) -> float:
    texts_of_drawn = np.concatenate([np.flatnonzero(text_image == i) for i in drawn])
    return 100 * float(np.concatenate([i2t[drawn].mean(0), t2i[texts_of_drawn].mean(0)]).mean())


a, b = (hits(path) for path in args.models)
everything = np.arange(len(images))
print(f"mR A {mean_recall(*a, everything):.2f}, B {mean_recall(*b, everything):.2f}")
rng = np.random.default_rng(0)
draws = [rng.integers(0, len(images), len(images)) for _ in range(args.resamples)]
scores = np.asarray([(mean_recall(*a, d), mean_recall(*b, d)) for d in draws])
low, high = np.percentile(scores[:, 1] - scores[:, 0], [2.5, 97.5])
print(f"{args.resamples} resamples: sd of mR A {scores[:, 0].std():.2f}, B {scores[:, 1].std():.2f}; "
      f"B - A 95 % interval [{low:.2f}, {high:.2f}], B above A in {100 * (scores[:, 1] > scores[:, 0]).mean():.1f} %")
