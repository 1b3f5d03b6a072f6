"""VLM2GeoVec: a vision-language backbone (Qwen2-VL, Qwen2.5-VL) as an encoder of interleaved inputs.

Importing this package registers the ``vlm2geovec`` encoder architecture (for ``load_encoder``) and the
``vlm2geovec`` model (for ``load_model`` / ``geovec models``), which loads a folder saved by ``VLMEncoder.save``.
"""

from geovec.models.registry import ModelSpec, register
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
]

register(ModelSpec(
    name="vlm2geovec",
    loader=lambda path, device: EncoderEmbedder.from_folder(path, "vlm2geovec", device),  # type: ignore[arg-type]
    modalities=VLMEncoder.modalities,
    dim=None,
    license="per backbone (Qwen2-VL-2B/7B: Apache-2.0)",
    weights="local encoder folder saved by VLMEncoder.save (--model-path); built from a Qwen2-VL / Qwen2.5-VL "
            "checkpoint, optionally with a LoRA adapter",
    description="VLM2Vec-style encoder: instruction + interleaved images, text, boxes and points in one prompt of a "
                "vision-language model; last-token hidden state, L2-normalised.",
    needs_path=True,
))
