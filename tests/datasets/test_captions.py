"""Reading the published RSITMD/RSICD caption-split layouts (AMFMN ``*_precomp``)."""

import pytest

from geovec.config import data_dir
from geovec.datasets import read_caption_split
from geovec.errors import GeovecError

SPLITS = data_dir() / "rs_caption_splits"


def write_split(root, caps, names, split="test"):
    folder = root / "toy"
    folder.mkdir(exist_ok=True)
    (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    (folder / f"{split}_filename.txt").write_text("\n".join(names) + "\n")


def test_caption_aligned_and_image_aligned_layouts_agree(tmp_path):
    caps = [f"caption {i}" for i in range(10)]
    write_split(tmp_path, caps, ["airport_1.jpg"] * 5 + ["00042.jpg"] * 5, "test")
    write_split(tmp_path, caps, ["airport_1.jpg", "00042.jpg"], "train")
    test, train = (read_caption_split(tmp_path, "toy", split) for split in ("test", "train"))
    assert [(i.filename, i.captions) for i in test] == [(i.filename, i.captions) for i in train]
    assert test[0].captions == tuple(caps[:5]) and test[0].scene == "airport" and test[1].scene is None


def test_inconsistent_files_are_named(tmp_path):
    write_split(tmp_path, [f"c{i}" for i in range(9)], ["a.jpg", "b.jpg"])
    with pytest.raises(GeovecError, match="has 9 captions but test_filename.txt lists 2 images"):
        read_caption_split(tmp_path, "toy", "test")
    write_split(tmp_path, [f"c{i}" for i in range(10)], ["a.jpg"] * 4 + ["b.jpg"] * 6)
    with pytest.raises(GeovecError, match="lines 1-5: expected 5 lines naming the same image"):
        read_caption_split(tmp_path, "toy", "test")
    with pytest.raises(GeovecError, match="caption split file not found"):
        read_caption_split(tmp_path, "nothing", "test")


@pytest.mark.skipif(not SPLITS.is_dir(), reason="shared data not present")
@pytest.mark.parametrize("dataset, split, images", [
    ("rsitmd", "test", 452), ("rsitmd", "train", 4291), ("rsicd", "test", 1093), ("rsicd", "train", 9828)])
def test_real_standard_splits(dataset, split, images):
    read = read_caption_split(SPLITS, dataset, split)
    assert len(read) == images == len({i.filename for i in read})
    assert all(len(i.captions) == 5 for i in read)
