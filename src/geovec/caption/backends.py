"""Local vision-language models behind one ``CaptionModel`` interface: images + prompts in, texts out.

One small adapter per VLM family (how its prompt is laid out and its pixels are prepared), chosen by the
checkpoint's ``config.model_type`` through ``FAMILIES``. Generation is batched with left padding (decoder-only
models continue from the right end) and greedy unless a re-ask asks for sampling; the generation settings are
fixed here, not taken from the checkpoint's ``generation_config``, so two checkpoints are run the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image
from transformers import (AutoImageProcessor, AutoProcessor, AutoTokenizer, BatchFeature, GenerationConfig,
                          LlavaNextForConditionalGeneration, PreTrainedModel, Qwen2VLForConditionalGeneration)

from geovec.errors import GeovecError, GeovecInputError
from geovec.models.base import checkpoint_model_type, checkpoint_revision

SAMPLING = {"temperature": 0.7, "top_p": 0.9}  # re-asks only: a different answer, still a plausible one


@dataclass(frozen=True)
class Generation:
    text: str
    finished: bool  # the model ended the text itself (EOS) instead of running into max_new_tokens


class CaptionModel(ABC):
    """A VLM checkpoint folder loaded for captioning; ``identity`` (name@revision) is what records cite."""

    family: ClassVar[str]
    model_class: ClassVar[type[PreTrainedModel]]

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        self.folder = folder
        self.name = folder.name
        self.revision = checkpoint_revision(folder)
        self.device = _device(device)
        dtype = torch.float32 if self.device.type == "cpu" else torch.bfloat16
        try:
            self.model = self.model_class.from_pretrained(folder, local_files_only=True, dtype=dtype)
            self._load_processor(folder)
        except (OSError, ValueError) as exc:
            raise GeovecError(f"{folder}: cannot load the {self.family} checkpoint: {exc}") from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id]
        self.eos_ids = frozenset(int(i) for i in eos if i is not None)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    @property
    def identity(self) -> str:
        return f"{self.name}@{self.revision}"

    @abstractmethod
    def _load_processor(self, folder: Path) -> None:
        """Set ``self.tokenizer`` and whatever the family needs to turn images + prompts into model inputs."""

    @abstractmethod
    def _inputs(self, images: list[Image.Image], prompts: list[str]) -> BatchFeature:
        """One chat turn per (image, prompt): the image, then the prompt, then the assistant's turn opened."""

    @torch.inference_mode()
    def generate(self, images: list[Image.Image], prompts: list[str], max_new_tokens: int, sample: bool = False,
                 seed: int = 0) -> list[Generation]:
        """Answer ``prompts[i]`` about ``images[i]`` in one batched ``generate`` call (greedy unless ``sample``)."""
        inputs = self._inputs(images, prompts).to(self.device, self.model.dtype)
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, **(SAMPLING if sample else {}),
                                  eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id)
        if sample:
            torch.manual_seed(seed)  # re-asks are reproducible too
        new = self.model.generate(**inputs, generation_config=config)[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [Generation(text.strip(), any(int(t) in self.eos_ids for t in row)) for text, row in zip(texts, new)]


class Qwen2VLCaption(CaptionModel):
    """Qwen2-VL: ChatML turns, the image as ``<|vision_start|>`` + one pad token per merged patch."""

    family = "qwen2_vl"
    model_class = Qwen2VLForConditionalGeneration
    TURN = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|>{image}<|vision_end|>{prompt}<|im_end|>\n<|im_start|>assistant\n")

    def _load_processor(self, folder: Path) -> None:
        # Qwen2VLProcessor insists on a video processor, which needs torchvision; captioning needs only images, so
        # the tokenizer and the (slow, PIL) image processor are used directly and the placeholder expanded here.
        self.image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, use_fast=False)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.model.config.image_token_id)

    def _inputs(self, images: list[Image.Image], prompts: list[str]) -> BatchFeature:
        pixels = self.image_processor(images=images, return_tensors="pt")
        counts = pixels["image_grid_thw"].prod(-1) // self.image_processor.merge_size ** 2
        texts = [self.TURN.format(image=self.image_token * int(n), prompt=p) for n, p in zip(counts, prompts)]
        return BatchFeature({**self.tokenizer(texts, padding=True, return_tensors="pt"), **pixels})


class LlavaNextCaption(CaptionModel):
    """LLaVA-NeXT: the turn layout depends on the language model inside, so the checkpoint's chat template is used."""

    family = "llava_next"
    model_class = LlavaNextForConditionalGeneration

    def _load_processor(self, folder: Path) -> None:
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True, use_fast=False)
        if not getattr(self.processor, "chat_template", None):
            raise GeovecError(f"{folder}: the LLaVA-NeXT processor has no chat template, so the prompt layout of its "
                              "language model is unknown (add chat_template.jinja from the published checkpoint)")
        self.tokenizer = self.processor.tokenizer

    def _inputs(self, images: list[Image.Image], prompts: list[str]) -> BatchFeature:
        texts = [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
            add_generation_prompt=True) for p in prompts]
        return self.processor(images=images, text=texts, padding=True, return_tensors="pt")


FAMILIES: dict[str, type[CaptionModel]] = {c.family: c for c in (Qwen2VLCaption, LlavaNextCaption)}


def _device(device: str) -> torch.device:
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise GeovecInputError("device", f"not a torch device: {device!r} (e.g. cpu, cuda, cuda:1)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise GeovecInputError("device", f"{device!r} asked for, but no CUDA GPU is available here")
    return parsed


def load_caption_model(folder: str | Path, device: str = "cpu") -> CaptionModel:
    """The adapter for the checkpoint in ``folder`` (local files only); anything else is refused by name."""
    folder = Path(folder)
    supported = ", ".join(sorted(FAMILIES))
    model_type = checkpoint_model_type(folder, f"vision-language checkpoint ({supported})")
    if model_type not in FAMILIES:
        raise GeovecInputError("model", f"{folder} holds a {model_type!r} checkpoint, not a supported "
                                        f"vision-language model; supported families: {supported}")
    return FAMILIES[model_type](folder, device)
