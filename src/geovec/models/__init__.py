"""Embedders: the protocol, the model registry and the built-in models."""

from geovec.models.base import BaseEmbedder, Embedder, l2_normalize
from geovec.models.registry import ModelSpec, get_spec, list_models, load_model, register

__all__ = ["BaseEmbedder", "Embedder", "ModelSpec", "get_spec", "l2_normalize", "list_models", "load_model",
           "register"]
