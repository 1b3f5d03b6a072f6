"""VLM2GeoVec: a vision-language backbone (Qwen2-VL, Qwen2.5-VL) as an encoder of interleaved inputs.

The ``vlm2geovec`` entry of the model table (``geovec.models.registry``) loads a folder saved by
``VLMEncoder.save`` through ``load_vlm2geovec``.
"""

from geovec.models.trainable import EncoderEmbedder
from geovec.models.vlm.adapters import (
           ADAPTERS,
           BackboneAdapter,
           Qwen2VLAdapter,
           Qwen25VLAdapter,
)
from geovec.models.vlm.encoder import DEFAULT_INSTRUCTIONS, VLMEncoder, VLMOptions

__all__ = [
           "ADAPTERS",
           "DEFAULT_INSTRUCTIONS",
           "BackboneAdapter",
           "Qwen2VLAdapter",
           "Qwen25VLAdapter",
           "VLMEncoder",
           "VLMOptions",
           "load_vlm2geovec",
]


def load_vlm2geovec(path: str, device: str | None) -> EncoderEmbedder:
    """The ``vlm2geovec`` registry entry's loader."""
    return EncoderEmbedder.from_folder(path, "vlm2geovec", device)
