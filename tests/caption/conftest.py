"""Session fixtures: tiny random Qwen2-VL and LLaVA-NeXT checkpoints (see tiny_vlm.py), loaded once, and images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_vlm import build_llava_next, build_qwen2_vl, build_tokenizer

from geovec.caption import load_caption_model
from geovec.config import data_dir

IMAGES = ["airport_1.jpg", "beach_269.jpg", "industrial_322.jpg", "00001.jpg"]  # the last one goes in a subfolder


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return build_tokenizer(tmp_path_factory.mktemp("vlm_tokenizer"))


@pytest.fixture(scope="session")
def qwen_checkpoint(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    return build_qwen2_vl(tmp_path_factory.mktemp("ckpt") / "tiny-qwen2-vl", tokenizer)


@pytest.fixture(scope="session")
def llava_checkpoint(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    return build_llava_next(tmp_path_factory.mktemp("ckpt") / "tiny-llava-next", tokenizer)


@pytest.fixture(scope="session")
def qwen_model(qwen_checkpoint: Path):
    return load_caption_model(qwen_checkpoint)


@pytest.fixture(scope="session")
def llava_model(llava_checkpoint: Path):
    return load_caption_model(llava_checkpoint)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Four real RSICD images (one in a subfolder) in a writable folder, so tests can add broken files."""
    source = data_dir() / "rsicd" / "images"
    if not all((source / name).is_file() for name in IMAGES):
        pytest.skip(f"RSICD images not found in {source}")
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for name in IMAGES:
        shutil.copy(source / name, folder / ("sub/" + name if name == IMAGES[-1] else name))
    return folder
