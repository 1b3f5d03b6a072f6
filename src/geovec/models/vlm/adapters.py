"""Backbone adapters: everything that differs between vision-language families, behind one small interface.

An adapter knows its family's chat prompt and image tokens, runs the tokenizer and image processor into tensors,
and calls the backbone. ``VLMEncoder`` never branches on a family name: it looks the checkpoint's
``config.model_type`` up in ``ADAPTERS``, so supporting a family is one class plus one table entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image as PILImage

from geovec.errors import GeovecError


class BackboneAdapter:
    """The interface ``VLMEncoder`` uses; subclasses fill in one family."""

    model_class: ClassVar[str]  # transformers class of the backbone *without* its LM head (embeddings only)

    def __init__(self, folder: Path) -> None:
        self.tokenizer, self.image_processor = self.load_processor(folder)

    def load_processor(self, folder: Path) -> tuple[Any, Any]:
        raise NotImplementedError

    def load_model(self, folder: Path, dtype: torch.dtype) -> torch.nn.Module:
        import transformers

        return getattr(transformers, self.model_class).from_pretrained(str(folder), dtype=dtype, local_files_only=True)

    def save_processor(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder))
        self.image_processor.save_pretrained(str(folder))

    @property
    def reserved_tokens(self) -> list[str]:
        """Control tokens user text must not contain (they would forge turns or image slots)."""
        return list(self.tokenizer.all_special_tokens)

    def image_problem(self, width: int, height: int) -> str | None:
        """Why this family cannot take an image of this shape, or ``None``: checked before any forward pass."""
        return None

    def image_prompt(self) -> str:
        raise NotImplementedError

    def prompt(self, body: str, instruction: str | None) -> str:
        raise NotImplementedError

    def prepare(self, prompts: Sequence[str], images: Sequence[PILImage.Image], padding_side: str,
                min_pixels: int, max_pixels: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def hidden_states(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class Qwen2VLAdapter(BackboneAdapter):
    """Qwen2-VL: ChatML turns; each image is ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch +
    ``<|vision_end|>``; the instruction is the system turn and the input ends with the user turn's ``<|im_end|>``,
    whose hidden state is the embedding (VLM2Vec-style last-token pooling)."""

    model_class = "Qwen2VLModel"
    IMAGE_PAD = "<|image_pad|>"

    def load_processor(self, folder: Path) -> tuple[Any, Any]:
        # The slow image processor: the fast one needs torchvision, and both give the same patches.
        from transformers import AutoTokenizer, Qwen2VLImageProcessor

        return (AutoTokenizer.from_pretrained(str(folder), local_files_only=True),
                Qwen2VLImageProcessor.from_pretrained(str(folder), local_files_only=True))

    def image_problem(self, width: int, height: int) -> str | None:
        if max(width, height) > 200 * min(width, height):
            return f"aspect ratio {width}x{height} is over 200:1, which Qwen2-VL's image processor cannot resize"
        return None

    def image_prompt(self) -> str:
        return f"<|vision_start|>{self.IMAGE_PAD}<|vision_end|>"

    def prompt(self, body: str, instruction: str | None) -> str:
        system = f"<|im_start|>system\n{instruction}<|im_end|>\n" if instruction else ""
        return f"{system}<|im_start|>user\n{body}<|im_end|>"

    def prepare(self, prompts: Sequence[str], images: Sequence[PILImage.Image], padding_side: str,
                min_pixels: int, max_pixels: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        prompts = list(prompts)
        if images:
            pixels = self.image_processor(images=list(images), min_pixels=min_pixels, max_pixels=max_pixels,
                                          return_tensors="pt")
            out = {"pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}
            counts = iter((pixels["image_grid_thw"].prod(-1) // self.image_processor.merge_size ** 2).tolist())
            # Expand each image slot to its patch count (what Qwen2VLProcessor does, minus its video processor,
            # which needs torchvision).
            for i, text in enumerate(prompts):
                first, *rest = text.split(self.IMAGE_PAD)
                prompts[i] = first + "".join(self.IMAGE_PAD * next(counts) + part for part in rest)
        tokens = self.tokenizer(prompts, padding=True, padding_side=padding_side, add_special_tokens=False,
                                return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"], **out}

    def hidden_states(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch, use_cache=False, return_dict=True).last_hidden_state


class Qwen25VLAdapter(Qwen2VLAdapter):
    """Qwen2.5-VL: same prompt, tokens and image processor; only the backbone class differs."""

    model_class = "Qwen2_5_VLModel"


ADAPTERS: dict[str, type[BackboneAdapter]] = {
    "qwen2_vl": Qwen2VLAdapter,
    "qwen2_5_vl": Qwen25VLAdapter,
}


def adapter_class(model_type: str | None, folder: Path) -> type[BackboneAdapter]:
    if model_type not in ADAPTERS:
        raise GeovecError(f"{folder}: unsupported vision-language backbone {model_type!r} (config.json model_type); "
                          f"supported: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[model_type]
