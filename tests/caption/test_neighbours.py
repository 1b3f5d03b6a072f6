"""Describing images by the captions of their nearest reference images, with the shipped geovec-mini."""

import shutil

import numpy as np
import pytest
from PIL import Image

from geovec.caption.neighbours import neighbour_corpus
from geovec.errors import GeovecInputError
from geovec.models import load_model
from geovec.t2t import Description


@pytest.fixture(scope="module")
def embedder():
    return load_model("geovec-mini")


@pytest.fixture
def reference(tmp_path):
    """Three visibly different reference images with two captions each; one caption shared by two of them."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "reference"
    folder.mkdir()
    looks = {"water.png": (20, 60, 160), "field.png": (60, 170, 40), "sand.png": (220, 200, 150)}
    for name, colour in looks.items():
        pixels = np.clip(np.array(colour) + rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    corpus = [Description("water.png", "human-caption", "a blue lake"),
              Description("water.png", "human-caption", "open water"),
              Description("field.png", "human-caption", "green farmland"),
              Description("field.png", "human-caption", "open water"),  # same text as a water caption
              Description("sand.png", "human-caption", "a sandy beach"),
              Description("sand.png", "human-caption", "bare sand")]
    return folder, corpus


def test_an_image_is_described_by_its_nearest_neighbours_captions_nearest_first(tmp_path, reference, embedder):
    folder, corpus = reference
    targets_dir = tmp_path / "targets"
    targets_dir.mkdir()
    shutil.copy(folder / "field.png", targets_dir / "new_field.png")  # same pixels: field.png is its nearest
    described, report = neighbour_corpus([("new_field.png", targets_dir / "new_field.png")], corpus, folder,
                                         embedder, k=1, reference_name="ref.jsonl", show_progress=False)
    assert [(d.image_id, d.kind, d.text) for d in described] == [
        ("new_field.png", "neighbour-1", "green farmland"), ("new_field.png", "neighbour-1", "open water")]
    assert {d.model for d in described} == {"neighbours:geovec-mini"}
    assert {d.prompt_version for d in described} == {"neighbours-v1:k=1:reference=ref.jsonl"}
    assert (report.targets, report.skipped_in_reference, report.descriptions) == (1, 0, 2)
    everything, _ = neighbour_corpus([("new_field.png", targets_dir / "new_field.png")], corpus, folder, embedder,
                                     k=3, show_progress=False)
    texts = [d.text for d in everything]
    assert texts[:2] == ["green farmland", "open water"] and len(texts) == len(set(texts)) == 5  # shared text once
    assert {d.kind for d in everything[2:]} <= {"neighbour-2", "neighbour-3"}


def test_reference_images_are_never_described_by_their_own_captions(reference, embedder):
    folder, corpus = reference
    targets = [(name, folder / name) for name in ("water.png", "sand.png")]
    with pytest.raises(GeovecInputError, match="every target image is in the reference"):
        neighbour_corpus(targets, corpus, folder, embedder, show_progress=False)
    described, report = neighbour_corpus(targets, corpus[:2], folder, embedder, k=1, show_progress=False)
    assert report.skipped_in_reference == 1 and {d.image_id for d in described} == {"sand.png"}
    assert {d.text for d in described} == {"a blue lake", "open water"}  # the only reference left: water.png


def test_an_unreadable_image_is_reported_and_the_others_described(tmp_path, reference, embedder):
    folder, corpus = reference
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    targets = [("broken.jpg", broken), ("copy.png", folder / "sand.png")]
    described, report = neighbour_corpus(targets, corpus[:4], folder, embedder, k=1, show_progress=False)
    assert {d.image_id for d in described} == {"copy.png"} and report.targets == 1
    assert list(report.failed) == ["broken.jpg"] and "cannot read image" in report.failed["broken.jpg"]
    with pytest.raises(GeovecInputError, match="none of the 1 images can be read, e.g. broken.jpg"):
        neighbour_corpus(targets[:1], corpus, folder, embedder)


def test_bad_reference_or_k_is_named(tmp_path, reference, embedder):
    folder, corpus = reference
    target = [("x.png", folder / "water.png")]
    with pytest.raises(GeovecInputError, match="reference-images.*1 reference images are not in"):
        neighbour_corpus(target, corpus + [Description("gone.png", "human-caption", "lost")], folder, embedder)
    with pytest.raises(GeovecInputError, match="k: must be at least 1"):
        neighbour_corpus(target, corpus, folder, embedder, k=0)
    with pytest.raises(GeovecInputError, match="reference corpus is empty"):
        neighbour_corpus(target, [], folder, embedder)
