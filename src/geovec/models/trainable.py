"""The contract between encoders that can be trained and ``geovec.train``.

A ``TrainableEncoder`` is a ``torch.nn.Module`` that turns a batch of interleaved inputs into one vector each,
with gradients. Preparation (tokenising, reading and resizing pixels) is split from the forward pass so the
trainer can prepare on CPU, move tensors to the device and, for GradCache, run the forward pass twice on the same
prepared batch. Every encoder saves itself as a folder: its weights plus ``geovec_encoder.json``, which names the
architecture and holds everything needed to reload it (pooling, normalisation, temperature, instruction
templates, rendering version). ``load_encoder`` reads that file and imports the class that the model table
(``geovec.models.registry``) names for the architecture, so a new backbone is one new class and one row of
data, not another branch in a chain of ifs.

``EncoderEmbedder`` wraps any such encoder as a registry ``Embedder`` (batched, de-duplicated, normalised
``encode()``), which is how trained checkpoints reach ``geovec search`` and ``geovec bench run``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from geovec.errors import GeovecError
from geovec.inputs import Interleaved
from geovec.models.base import BaseEmbedder, TextWindow, checkpoint_revision
from geovec.models.query_pass import AS_TRAINED, LEAN, TRANSFORMERS, QueryPass
from geovec.models.registry import encoder_class_path, resolve

ENCODER_CONFIG = "geovec_encoder.json"


class TrainableEncoder(torch.nn.Module, ABC):
    """An interleaved-input encoder with gradients; see the module docstring for the contract."""

    architecture: str = ""  # the model-table name its checkpoints carry (``ModelSpec.encoder_class_path``)
    dim: int
    modalities: frozenset[str]
    float32_parts: tuple[str, ...] = ()  # submodules whose forward always runs in float32, even under autocast

    @abstractmethod
    def prepare(self, items: Sequence[Interleaved]) -> dict[str, torch.Tensor]:
        """CPU tensors for a batch (no gradients); raises ``GeovecInputError`` naming the bad input."""

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(len(batch), dim)`` embeddings, *not* normalised (losses normalise)."""

    @abstractmethod
    def encoder_config(self) -> dict[str, Any]:
        """Everything besides weights needed to rebuild this encoder (JSON-serialisable)."""

    @abstractmethod
    def save_weights(self, folder: Path) -> None:
        """Write the weights (and tokenizer/processor files) into ``folder``."""

    @classmethod
    @abstractmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], device: str | None = None) -> "TrainableEncoder":
        """Rebuild from a folder written by ``save``; ``config`` is its parsed ``geovec_encoder.json``."""

    def use_feature_cache(self, folder: str | Path, image_paths: Sequence[str], show_progress: bool = True,
                          crops: Sequence[tuple[str, tuple[int, int, int, int]]] = ()) -> int:
        """Read the frozen part of the vision side from a per-image (and per-crop) cache (see ``geovec-mini``);
        most encoders have none."""
        raise GeovecError(f"the {self.architecture!r} encoder has no frozen image features to cache")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def save(self, folder: str | Path) -> Path:
        """Write weights and ``geovec_encoder.json``; the config is written last, so a folder with the config
        is complete."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_weights(folder)
        config = {"architecture": self.architecture, **self.encoder_config()}
        tmp = folder / (ENCODER_CONFIG + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        tmp.replace(folder / ENCODER_CONFIG)
        return folder

    def query_passes(self) -> tuple[str, ...]:
        """The forward passes this encoder has for inference (``geovec.models.query_pass``): its own, unless a
        subclass adds one (then ``forward`` takes ``query_pass``)."""
        return (TRANSFORMERS,)

    def embed(self, items: Sequence[Interleaved], query_pass: str = TRANSFORMERS) -> torch.Tensor:
        """Prepare, move to this module's device, forward (with ``query_pass``, one of ``query_passes``),
        L2-normalise (keeps gradients)."""
        batch = {key: value.to(self.device) for key, value in self.prepare(items).items()}
        vectors = self.forward(batch) if query_pass == TRANSFORMERS else self.forward(batch, query_pass=query_pass)
        return torch.nn.functional.normalize(vectors, dim=-1)


def read_encoder_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / ENCODER_CONFIG
    if not folder.is_dir():
        raise GeovecError(f"encoder checkpoint folder does not exist: {folder}")
    if not path.is_file():
        raise GeovecError(f"{folder} is not a geovec encoder checkpoint: missing {ENCODER_CONFIG}")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GeovecError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise GeovecError(f"{path} has no 'architecture' field")
    return config


def load_encoder(folder: str | Path, device: str | None = None) -> TrainableEncoder:
    """Rebuild any saved encoder; the architecture named in its config picks the class."""
    config = read_encoder_config(folder)
    try:
        cls = architecture_class(config["architecture"])
    except GeovecError as exc:
        raise GeovecError(f"{folder}: {exc}") from None
    return cls.from_folder(Path(folder), config, device)


def architecture_class(name: str) -> type[TrainableEncoder]:
    """The encoder class of architecture ``name``, found in the model table and imported now."""
    return resolve(encoder_class_path(name))


class EncoderEmbedder(BaseEmbedder):
    """A ``TrainableEncoder`` behind the ``Embedder`` interface (inference mode, no gradients)."""

    def __init__(self, encoder: TrainableEncoder, name: str, revision: str = "") -> None:
        self.encoder = encoder.eval()
        # bulk embedding (ingest, index build, benchmarks) runs the lean pass in float32 where the model has it: the
        # same vectors as the model's own within float32 rounding, with an isolated instruction computed once per
        # batch; queries of a server get the pass measured fastest (with_precision("auto"))
        self.query_pass = QueryPass(LEAN, "float32") if LEAN in encoder.query_passes() else AS_TRAINED
        self.name = name
        self.dim = encoder.dim
        self.modalities = encoder.modalities
        self.revision = revision

    @classmethod
    def from_folder(cls, folder: str | Path, name: str, device: str | None = None) -> "EncoderEmbedder":
        return cls(load_encoder(folder, device), name, checkpoint_revision(folder))

    def text_window(self) -> TextWindow | None:
        """From an encoder with a ``tokenizer`` and ``settings.max_length`` (geovec-mini); VLMs have none."""
        tokenizer = getattr(self.encoder, "tokenizer", None)
        limit = getattr(getattr(self.encoder, "settings", None), "max_length", None)
        if tokenizer is None or not isinstance(limit, int):
            return None
        return TextWindow(lambda text: len(tokenizer(text, verbose=False)["input_ids"]), limit)

    supports_bfloat16 = True

    def pass_names(self) -> tuple[str, ...]:
        return self.encoder.query_passes()

    @property
    def device_type(self) -> str:
        return self.encoder.device.type

    @torch.inference_mode()
    def embed_batch(self, items: Sequence[Interleaved]) -> np.ndarray:
        with self.autocast():
            return self.encoder.embed(items, self.query_pass.name).float().cpu().numpy()
