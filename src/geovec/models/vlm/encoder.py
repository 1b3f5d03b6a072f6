"""VLM2GeoVec: one vision-language model used as an encoder of interleaved inputs (VLM2Vec recipe).

An input becomes one chat prompt: the instruction (system turn), then the segments in order in the user turn
(images as the backbone's image tokens, boxes and points in the canonical ``geovec.inputs.render`` text), closed
by the end-of-turn token. The embedding is that last real token's hidden state (``pooling="last"``), found from
the attention mask, so left and right padding give the same vector; ``embed`` L2-normalises it.

Images: the processor fits each image into the pixel budget ``[min_pixels, max_pixels]`` (sides rounded to the
patch grid). An image over ``max_pixels`` is scaled down to fit by default (``resize=True``, what Qwen2-VL does);
with ``resize=False`` it is refused before any forward pass, naming the image and the limit, for users who must not
lose ground resolution silently.

Saving: without LoRA (or after ``merge_lora``) the folder holds the whole backbone and is self-contained. With an
unmerged LoRA adapter the folder holds only the adapter (``lora/``) plus the processor, and
``geovec_encoder.json`` references the base checkpoint by absolute path and content fingerprint: training
checkpoints stay megabytes instead of gigabytes, and a changed or moved base is refused on load instead of
silently producing other vectors.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image as PILImage

from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import (
    RENDERING_VERSION,
    ImageSegment,
    Interleaved,
    TextSegment,
    render_text,
)
from geovec.instructions import CATEGORIES
from geovec.models.base import ALL_MODALITIES, checkpoint_model_type, checkpoint_revision
from geovec.models.trainable import TrainableEncoder
from geovec.models.vlm.adapters import BackboneAdapter, adapter_class

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
LORA_DIR = "lora"
# The language model's linear layers (Qwen2 names); the vision tower's are named qkv/proj/fc1/fc2 and stay frozen.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Default instructions per RSMEB category (query side, candidate side): what training and ad-hoc queries use when
# no task supplies its own, so the model sees the same wording in training and at search time.
DEFAULT_INSTRUCTIONS: dict[str, dict[str, str]] = {
    "scene-classification": {"query": "Represent the given remote-sensing image for scene classification:",
                             "candidate": "Represent the scene class name:"},
    "cross-modal-retrieval": {"query": "Represent the given remote-sensing image for retrieving its caption:",
                              "candidate": "Represent the caption for retrieving the remote-sensing image it "
                                           "describes:"},
    "compositional-retrieval": {"query": "Retrieve a remote-sensing image like the given one but with the "
                                         "attribute the text names:",
                                "candidate": "Represent the given remote-sensing image:"},
    "vqa": {"query": "Represent the given remote-sensing image with the following question:",
            "candidate": "Represent the answer:"},
    "region": {"query": "Represent the marked region of the given remote-sensing image:",
               "candidate": "Represent the description of an object in a remote-sensing image:"},
    "geo-localization": {"query": "Represent the given remote-sensing image for finding where it was taken:",
                         "candidate": "Represent the geographic location:"},
}


def _last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at each row's last attended position: correct for left, right or no padding."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask.long() * positions).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


POOLING: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"last": _last_token, "mean": _mean}


@dataclass
class VLMOptions:
    """Everything besides weights that changes the vectors (saved in ``geovec_encoder.json``)."""

    pooling: str = "last"
    normalize: bool = True  # embed() always L2-normalises (the contract); recorded for readers of the config
    temperature: float = 0.02  # InfoNCE temperature used in training (VLM2Vec's value)
    instructions: dict[str, dict[str, str]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_INSTRUCTIONS))
    min_pixels: int = 56 * 56
    max_pixels: int = 1280 * 28 * 28
    resize: bool = True  # False: refuse images over max_pixels instead of scaling them down
    padding_side: str = "right"
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU

    def __post_init__(self) -> None:
        def positive_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        checks: list[tuple[str, Callable[[], bool], str]] = [  # lazy: a later check may assume an earlier one
            ("pooling", lambda: isinstance(self.pooling, str) and self.pooling in POOLING,
             f"must be one of {', '.join(POOLING)}"),
            ("temperature", lambda: isinstance(self.temperature, (int, float)) and self.temperature > 0,
             "must be a number > 0"),
            ("max_pixels", lambda: positive_int(self.max_pixels), "must be a positive integer"),
            ("min_pixels", lambda: positive_int(self.min_pixels) and self.min_pixels <= self.max_pixels,
             "must be a positive integer no larger than max_pixels"),
            ("padding_side", lambda: self.padding_side in ("left", "right"), "must be 'left' or 'right'"),
            ("dtype", lambda: self.dtype == "auto" or self.dtype in DTYPES,
             f"must be 'auto' or one of {', '.join(DTYPES)}"),
            ("instructions", lambda: isinstance(self.instructions, dict) and set(self.instructions) <= set(CATEGORIES)
             and all(isinstance(v, dict) and set(v) == {"query", "candidate"} for v in self.instructions.values()),
             f"must map RSMEB categories ({', '.join(CATEGORIES)}) to {{'query': ..., 'candidate': ...}}"),
        ]
        for name, ok, problem in checks:
            if not ok():
                raise GeovecInputError(f"encoder option {name}", f"{problem}, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config: dict[str, Any], strict: bool = False) -> VLMOptions:
        """Options from a saved config (other keys ignored) or from a caller (``strict``: unknown keys refused)."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(known)) if strict else []
        if unknown:
            raise GeovecInputError(f"encoder option {unknown[0]}", f"unknown; known options: {', '.join(known)}")
        return cls(**{name: config[name] for name in known if name in config})

    def torch_dtype(self, device: str) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if device.startswith("cuda") else torch.float32
        return DTYPES[self.dtype]


def _check_checkpoint(folder: Path) -> str:
    """The checkpoint's ``model_type``; fails naming the folder and the missing piece."""
    model_type = checkpoint_model_type(folder, "vision-language checkpoint")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise GeovecError(f"{folder} has no weights: expected one of {', '.join(WEIGHT_FILES)}")
    return model_type


class VLMEncoder(TrainableEncoder):
    """A vision-language backbone (through its adapter) as an interleaved-input encoder; see the module docstring."""

    architecture = "vlm2geovec"
    modalities = ALL_MODALITIES

    def __init__(self, backbone: torch.nn.Module, adapter: BackboneAdapter, options: VLMOptions,
                 base_path: Path, backbone_type: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter
        self.options = options
        self.base_path = base_path.resolve()  # where the base weights live (referenced by LoRA-only saves)
        self.base_revision = checkpoint_revision(base_path)
        self.backbone_type = backbone_type
        config = backbone.config
        self.dim = int(getattr(config, "text_config", config).hidden_size)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, folder: str | Path, lora: str | Path | None = None, merge_lora: bool = False,
                        device: str | None = None, **options: Any) -> VLMEncoder:
        """A base checkpoint folder (e.g. Qwen2-VL-2B-Instruct), optionally with a peft LoRA adapter folder."""
        folder = Path(folder)
        return cls._load(folder, folder, Path(lora) if lora else None, merge_lora, device,
                         VLMOptions.from_config(options, strict=True))

    @classmethod
    def initial(cls, base: str | None = None, **options: Any) -> VLMEncoder:
        """The trainer's starting model: ``model_options: {base: /models/Qwen2-VL-2B-Instruct, ...}``."""
        if not base:
            raise GeovecInputError("model_options.base", "give the base vision-language checkpoint folder")
        return cls.from_pretrained(base, **options)

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], device: str | None = None) -> VLMEncoder:
        if config.get("rendering_version") != RENDERING_VERSION:
            raise GeovecError(f"{folder}: encoder was saved with input rendering version "
                              f"{config.get('rendering_version')!r}, this geovec renders version {RENDERING_VERSION}")
        options = VLMOptions.from_config(config)
        reference = config.get("lora")
        if not reference:
            return cls._load(folder, folder, None, False, device, options)
        if not isinstance(reference, dict) or not {"base_model", "base_revision"} <= set(reference):
            raise GeovecError(f"{folder}: 'lora' in its encoder config needs 'base_model' and 'base_revision'")
        base = Path(reference["base_model"])
        if not base.is_dir():
            raise GeovecError(f"{folder}: its LoRA adapter needs the base checkpoint {base}, which does not exist")
        if checkpoint_revision(base) != reference["base_revision"]:
            raise GeovecError(f"{folder}: base checkpoint {base} changed since the adapter was saved (fingerprint "
                              f"{checkpoint_revision(base)}, expected {reference['base_revision']})")
        return cls._load(base, folder, folder / LORA_DIR, False, device, options)

    @classmethod
    def _load(cls, weights: Path, processor: Path, lora: Path | None, merge_lora: bool, device: str | None,
              options: VLMOptions) -> VLMEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model_type = _check_checkpoint(weights)
        adapter_cls = adapter_class(model_type, weights)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            adapter = adapter_cls(processor)
            backbone = adapter.load_model(weights, options.torch_dtype(device))
        except (OSError, ValueError) as exc:
            raise GeovecError(f"cannot load vision-language checkpoint {weights}: {exc}") from None
        encoder = cls(backbone.to(device), adapter, options, weights, model_type)
        if lora is not None:
            encoder.load_lora(lora, merge=merge_lora)
        return encoder

    # ------------------------------------------------------------------ LoRA
    @property
    def has_lora(self) -> bool:
        return hasattr(self.backbone, "peft_config")

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules: str = LORA_TARGETS,
                 **lora_kwargs: Any) -> VLMEncoder:
        """Wrap the language model's linear layers in a fresh LoRA adapter (base weights frozen)."""
        from peft import LoraConfig, get_peft_model

        if self.has_lora:
            raise GeovecError("this encoder already has a LoRA adapter; merge_lora() first to stack another")
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, **lora_kwargs)
        self.backbone = get_peft_model(self.backbone, config)
        return self

    def load_lora(self, folder: str | Path, merge: bool = False) -> VLMEncoder:
        """Apply a saved peft adapter; ``merge`` folds it into the weights (faster inference, no longer separable)."""
        from peft import PeftModel

        folder = Path(folder)
        if not (folder / "adapter_config.json").is_file():
            raise GeovecError(f"{folder} is not a LoRA adapter folder: missing adapter_config.json")
        self.backbone = PeftModel.from_pretrained(self.backbone, str(folder), is_trainable=not merge)
        return self.merge_lora() if merge else self

    def merge_lora(self) -> VLMEncoder:
        if self.has_lora:
            self.backbone = self.backbone.merge_and_unload()
        return self

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Trade compute for memory in training (non-reentrant by default, so frozen inputs still get gradients)."""
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or {"use_reentrant": False})

    # ------------------------------------------------------------------ encoding
    @property
    def max_image_pixels(self) -> int:
        return self.options.max_pixels

    def instruction(self, category: str, side: str = "query") -> str:
        """This encoder's instruction for an RSMEB category and side ('query' or 'candidate')."""
        if category not in self.options.instructions:
            raise GeovecInputError("category", f"no instruction for {category!r}; known: "
                                   f"{', '.join(sorted(self.options.instructions))}")
        return self.options.instructions[category][side]

    def _check(self, position: int, item: Interleaved) -> None:
        reserved = self.adapter.reserved_tokens
        texts = [("instruction", item.instruction or "")] + [
            (f"segments[{j}].text", s.text) for j, s in enumerate(item.segments) if isinstance(s, TextSegment)]
        for name, text in texts:
            for token in reserved:
                if token in text:
                    raise GeovecInputError(f"inputs[{position}].{name}", f"contains the backbone's control token "
                                           f"{token!r}, which would corrupt the prompt; remove it")
        for j, segment in enumerate(item.segments):
            if not isinstance(segment, ImageSegment):
                continue
            w, h = segment.size
            problem = self.adapter.image_problem(w, h)
            if problem is None and not self.options.resize and w * h > self.max_image_pixels:
                problem = (f"has {w}x{h} = {w * h} pixels, over this encoder's limit of {self.max_image_pixels} "
                           "(max_pixels); downscale or tile it, or use resize=True")
            if problem:
                raise GeovecInputError(f"inputs[{position}].segments[{j}]", f"image {segment.describe()} {problem}")

    def prepare(self, items: Sequence[Interleaved]) -> dict[str, torch.Tensor]:
        for position, item in enumerate(items):
            self._check(position, item)
        slot = self.adapter.image_prompt()
        prompts = [self.adapter.prompt(render_text(item, include_instruction=False, image_placeholder=slot),
                                       item.instruction) for item in items]
        images: list[PILImage.Image] = [s.load() for item in items for s in item.segments
                                        if isinstance(s, ImageSegment)]
        return self.adapter.prepare(prompts, images, self.options.padding_side, self.options.min_pixels,
                                    self.options.max_pixels)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.adapter.hidden_states(self.backbone, batch)
        return POOLING[self.options.pooling](hidden, batch["attention_mask"])

    # ------------------------------------------------------------------ saving
    def encoder_config(self) -> dict[str, Any]:
        lora = {"base_model": str(self.base_path), "base_revision": self.base_revision} if self.has_lora else None
        return {**asdict(self.options), "backbone": self.backbone_type, "dim": self.dim,
                "rendering_version": RENDERING_VERSION, "lora": lora}

    def save_weights(self, folder: Path) -> None:
        if self.has_lora and folder.resolve() == self.base_path:
            raise GeovecError(f"cannot save a LoRA adapter into its own base checkpoint {folder}: choose another folder")
        self.adapter.save_processor(folder)
        self.backbone.save_pretrained(str(folder / LORA_DIR if self.has_lora else folder))
