"""CLIP-style dual encoders (CLIP, RemoteCLIP, GeoRSCLIP, SkyCLIP) from a local transformers checkpoint folder.

How an interleaved input becomes one vector:

* image segment -> image tower on the whole image;
* box segment   -> image tower on the crop of the image it lies on (box rounded outward to whole pixels). The crop
  *replaces* that image: ``[image, box]`` embeds only the region. A normalised box with no image is refused,
  since CLIP has nothing to crop;
* text segment  -> text tower;
* point         -> text tower on ``"a satellite image at latitude 52.3700, longitude 4.8900"`` (4 decimals,
  latitude first), the caption-like wording CLIP towers understand best;
* instruction   -> ignored: CLIP was trained on captions, not instructions, and prepending one only shifts the
  text vector away from the image space.

Fusion: each part vector is L2-normalised; visual parts (images, crops) are averaged and normalised, text parts
(texts, points) likewise, and the input's vector is ``normalise(visual + text)``. A pure image or pure text input
is just its tower's vector, so image+edit-text and image+box queries land in the same space as plain ones.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image as PILImage

from geovec.errors import GeovecError, UnsupportedInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.models.base import (ALL_MODALITIES, BaseEmbedder, TextWindow, checkpoint_model_type, checkpoint_revision,
                                 l2_normalize)


def render_point_caption(lat: float, lon: float) -> str:
    """The natural-language form of a point that the text tower embeds."""
    return f"a satellite image at latitude {lat + 0.0:.4f}, longitude {lon + 0.0:.4f}".replace("-0.0000", "0.0000")


def crop_box(image: PILImage.Image, box: BoxSegment) -> PILImage.Image:
    """The region of ``image`` under ``box``, rounded outward to whole pixels and at least 1x1."""
    w, h = image.size
    x1, y1, x2, y2 = box.pixels((w, h))
    left, top = min(max(math.floor(x1), 0), w - 1), min(max(math.floor(y1), 0), h - 1)
    right, bottom = max(min(math.ceil(x2), w), left + 1), max(min(math.ceil(y2), h), top + 1)
    return image.crop((left, top, right, bottom))


def _check_checkpoint(folder: Path) -> None:
    """Fail early, naming the folder and the missing piece, instead of a transformers stack trace."""
    model_type = checkpoint_model_type(folder, "CLIP checkpoint")
    if model_type != "clip":
        raise GeovecError(f"{folder} is not a CLIP checkpoint: config.json has model_type {model_type!r}, "
                          "expected 'clip' (convert RemoteCLIP/GeoRSCLIP/SkyCLIP weights to transformers CLIPModel)")
    has_bpe = all((folder / f).is_file() for f in ("vocab.json", "merges.txt"))
    if not (folder / "tokenizer.json").is_file() and not has_bpe:
        raise GeovecError(f"{folder} is not a complete CLIP checkpoint: missing tokenizer files "
                          "(tokenizer.json, or vocab.json + merges.txt)")
    if not (folder / "preprocessor_config.json").is_file():
        raise GeovecError(f"{folder} is not a complete CLIP checkpoint: missing preprocessor_config.json "
                          "(the CLIPImageProcessor settings)")


def _features(output: Any, dim: int) -> Any:
    """``get_*_features`` returns a tensor in transformers 4.x and may return a model output object later."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for key in ("text_embeds", "image_embeds", "pooler_output", "last_hidden_state"):
        value = getattr(output, key, None)
        if isinstance(value, torch.Tensor) and value.ndim == 2 and value.shape[-1] == dim:
            return value
    raise GeovecError(f"unexpected output of the CLIP feature call: {type(output).__name__}")


class CLIPEmbedder(BaseEmbedder):
    """A transformers ``CLIPModel`` with its tokenizer and image processor; see the module docstring for fusion."""

    modalities = ALL_MODALITIES

    def __init__(self, model_path: str | Path, name: str = "clip", device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        folder = Path(model_path)
        _check_checkpoint(folder)
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        try:
            self.model = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device or "cpu").eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise GeovecError(f"cannot load CLIP checkpoint {folder}: {exc}") from None
        self.name = name
        self.revision = checkpoint_revision(folder)
        self.device = device or "cpu"
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(min(self.tokenizer.model_max_length,
                                  self.model.config.text_config.max_position_embeddings))

    def check_supported(self, items: Sequence[Interleaved]) -> None:
        super().check_supported(items)
        for i, item in enumerate(items):
            for j, segment in enumerate(item.segments):
                if isinstance(segment, BoxSegment) and item.image_for(j) is None:
                    raise UnsupportedInputError(
                        f"inputs[{i}].segments[{j}]: model '{self.name}' embeds a box as a crop of its image, but "
                        "this box has no image before it; add the image segment or use a text model")

    def text_window(self) -> TextWindow:
        return TextWindow(lambda text: len(self.tokenizer(text, verbose=False)["input_ids"]), self.max_length,
                          reads_instruction=False)  # CLIP was not trained with instructions: they are ignored

    def _parts(self, item: Interleaved) -> tuple[list[PILImage.Image], list[str]]:
        """The visual parts (whole images not covered by a box, and box crops) and text parts of one input."""
        decoded: dict[int, PILImage.Image] = {}
        boxed = {id(item.image_for(j)) for j, s in enumerate(item.segments) if isinstance(s, BoxSegment)}
        visuals: list[PILImage.Image] = []
        texts: list[str] = []
        for j, segment in enumerate(item.segments):
            if isinstance(segment, ImageSegment) and id(segment) not in boxed:
                visuals.append(segment.load())
            elif isinstance(segment, BoxSegment):
                image = item.image_for(j)
                if image is None:  # encode() refuses these first; guards direct embed_batch callers
                    raise UnsupportedInputError(f"segments[{j}]: a box needs an image for model '{self.name}'")
                if id(image) not in decoded:
                    decoded[id(image)] = image.load()
                visuals.append(crop_box(decoded[id(image)], segment))
            elif isinstance(segment, TextSegment):
                texts.append(segment.text)
            elif isinstance(segment, PointSegment):
                texts.append(render_point_caption(segment.lat, segment.lon))
        return visuals, texts

    def _encode_images(self, images: list[PILImage.Image]) -> np.ndarray:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        out = self.model.get_image_features(pixel_values=pixels)
        return l2_normalize(_features(out, self.dim).float().cpu().numpy())

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        out = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                           attention_mask=tokens["attention_mask"].to(self.device))
        return l2_normalize(_features(out, self.dim).float().cpu().numpy())

    supports_bfloat16 = True

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def embed_batch(self, items: Sequence[Interleaved]) -> np.ndarray:
        import torch

        parts = [self._parts(item) for item in items]
        all_images = [im for visuals, _ in parts for im in visuals]
        all_texts = [t for _, texts in parts for t in texts]
        with torch.inference_mode(), self.autocast():
            image_vecs = self._encode_images(all_images) if all_images else np.zeros((0, self.dim), np.float32)
            text_vecs = self._encode_texts(all_texts) if all_texts else np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        i_pos = t_pos = 0
        for row, (visuals, texts) in enumerate(parts):
            if visuals:
                out[row] += l2_normalize(image_vecs[i_pos:i_pos + len(visuals)].mean(axis=0))
                i_pos += len(visuals)
            if texts:
                out[row] += l2_normalize(text_vecs[t_pos:t_pos + len(texts)].mean(axis=0))
                t_pos += len(texts)
        return l2_normalize(out)


def load_clip(path: str, device: str | None) -> CLIPEmbedder:
    """The ``clip`` registry entry's loader (see ``geovec.models.registry``)."""
    return CLIPEmbedder(path, "clip", device)
