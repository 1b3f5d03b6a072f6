"""Model descriptions as data (open_clip style): one table, one factory.

Each ``ModelSpec`` says what a model embeds, how big its vectors are, under which licence and where its weights
come from. ``load_model`` is the only way code and CLI obtain an embedder, so an unknown name or a missing
checkpoint fails in one place with one clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from geovec.errors import GeovecError
from geovec.models.base import Embedder


@dataclass(frozen=True)
class ModelSpec:
    name: str
    loader: Callable[[str | None, str | None], Embedder]  # (checkpoint path, device) -> embedder
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


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[ModelSpec]:
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda spec: spec.name)


def get_spec(name: str) -> ModelSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise GeovecError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))} "
                          "(see `geovec models`)")
    return _REGISTRY[name]


def load_model(name: str, path: str | Path | None = None, device: str | None = None) -> Embedder:
    """Instantiate a registered model; ``path`` is the local checkpoint folder for models that need one."""
    spec = get_spec(name)
    if spec.needs_path and path is None:
        raise GeovecError(f"model {name!r} loads from a local checkpoint: give its folder with --model-path "
                          f"(weights: {spec.weights})")
    if path is not None and not Path(path).exists():
        raise GeovecError(f"checkpoint path for model {name!r} does not exist: {path}")
    return spec.loader(str(path) if path is not None else None, device)


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


def _load_builtins() -> None:
    # Importing the modules registers their specs; deferred so `import geovec` stays light.
    import geovec.models.clip  # noqa: F401
    import geovec.models.mini  # noqa: F401
    import geovec.models.text  # noqa: F401
    import geovec.models.vlm  # noqa: F401
