"""Interleaved inputs: the one typed, validated representation of everything geovec embeds.

An input is an ordered sequence of segments (text, image, box on an image, geographic point) plus an optional
task instruction. The same structure is the JSON format of datasets, queries and results, so every segment
round-trips through ``to_dict`` / ``from_dict`` without loss.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence, Union

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from geovec.errors import GeovecInputError
from geovec.inputs.text import check_utf8

BoxUnits = Literal["pixel", "normalized"]
SEGMENT_KINDS = ("text", "image", "box", "point")
MAX_IMAGE_PIXELS = 89_478_485  # PIL's decompression-bomb warning size: a query image larger is a scene, or an attack


def _too_big(name: str, size: str) -> GeovecInputError:
    return GeovecInputError("image", f"{name} is {size}, more than the {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx a query image "
                            "may have (a whole scene or a decompression bomb): cut it into chips with "
                            "`geovec ingest`, or downsample it")


def _open_image(source: str | io.BytesIO, name: str) -> PILImage.Image:
    """``PIL.Image.open`` that refuses images above ``MAX_IMAGE_PIXELS`` from the header, before decoding (PIL
    itself only warns up to twice its limit, then raises an error that is no ``OSError``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(source)
        except PILImage.DecompressionBombError as exc:
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            raise _too_big(name, f"{int(claimed[1]) / 1e6:.0f} Mpx" if claimed else "too large") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise _too_big(name, f"{width}x{height} ({width * height / 1e6:.0f} Mpx)")
    return image


def _finite(field_name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GeovecInputError(field_name, f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise GeovecInputError(field_name, f"must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class TextSegment:
    """A piece of natural-language text (a caption, a question, an edit instruction...)."""

    text: str
    kind: str = field(default="text", init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise GeovecInputError("text", f"expected a string, got {type(self.text).__name__}")
        if not self.text.strip():
            raise GeovecInputError("text", "is empty")
        check_utf8("text", self.text)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class GeoRef:
    """Where an image lies on Earth: its CRS and affine pixel-to-CRS transform (rasterio/GDAL ``a,b,c,d,e,f``)."""

    crs: str
    transform: tuple[float, float, float, float, float, float]

    def __post_init__(self) -> None:
        if not isinstance(self.crs, str) or not self.crs.strip():
            raise GeovecInputError("georef.crs", "must be a non-empty CRS string such as 'EPSG:32618'")
        if len(self.transform) != 6:
            raise GeovecInputError("georef.transform", f"needs 6 numbers (a, b, c, d, e, f), got {len(self.transform)}")
        object.__setattr__(self, "transform",
                           tuple(_finite(f"georef.transform[{i}]", v) for i, v in enumerate(self.transform)))

    def to_dict(self) -> dict[str, Any]:
        return {"crs": self.crs, "transform": list(self.transform)}


ImageSource = Union[str, os.PathLike, PILImage.Image, np.ndarray]


@dataclass(frozen=True, eq=False)
class ImageSegment:
    """An image given as a file path, a PIL image or an ``HxW`` / ``HxWxC`` uint8 array.

    Files are checked when the segment is made (exists, decodable, non-empty) but pixels are decoded only when
    a model needs them, so building queries over a large archive stays cheap.
    """

    source: ImageSource
    georef: GeoRef | None = None
    kind: str = field(default="image", init=False, repr=False)
    size: tuple[int, int] = field(default=(0, 0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = self.source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not str(source).strip():
                raise GeovecInputError("image", "empty image path")
            if path.is_dir():
                raise GeovecInputError("image", f"{path} is a folder; give an image file")
            if not path.is_file():
                raise GeovecInputError("image", f"no such image file: {path}")
            if path.stat().st_size == 0:
                raise GeovecInputError("image", f"image file is empty: {path}")
            try:
                with _open_image(str(path), str(path)) as im:
                    size = im.size
            except (UnidentifiedImageError, OSError) as exc:
                raise GeovecInputError("image", f"cannot read image {path}: {exc}") from None
            object.__setattr__(self, "source", str(path))
        elif isinstance(source, PILImage.Image):
            size = source.size
        elif isinstance(source, np.ndarray):
            if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
                raise GeovecInputError("image", f"array must be HxW or HxWxC with C in 1/3/4, got shape {source.shape}")
            size = (int(source.shape[1]), int(source.shape[0]))
        else:
            raise GeovecInputError("image", f"expected a path, PIL image or numpy array, got {type(source).__name__}")
        if size[0] <= 0 or size[1] <= 0:
            raise GeovecInputError("image", f"image has no pixels (size {size[0]}x{size[1]})")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))

    @property
    def path(self) -> str | None:
        return self.source if isinstance(self.source, str) else None

    def load(self) -> PILImage.Image:
        """Decode to an RGB PIL image (raises ``GeovecInputError`` for files that are corrupt past the header)."""
        source = self.source
        try:
            if isinstance(source, str):
                with _open_image(source, source) as im:
                    im.load()
                    return im.convert("RGB")
            if isinstance(source, PILImage.Image):
                return source.convert("RGB")
            array = source
            if array.dtype != np.uint8:
                raise GeovecInputError("image", f"array dtype must be uint8, got {array.dtype}")
            if array.ndim == 3 and array.shape[2] == 1:
                array = array[:, :, 0]
            return PILImage.fromarray(array).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise GeovecInputError("image", f"cannot decode image {self.describe()}: {exc}") from None

    def describe(self) -> str:
        return self.source if isinstance(self.source, str) else f"<in-memory {self.size[0]}x{self.size[1]} image>"

    def content_key(self) -> str:
        """A stable identity for caching: path + size + mtime for files, a pixel hash for in-memory images."""
        if isinstance(self.source, str):
            stat = os.stat(self.source)
            return f"file:{os.path.abspath(self.source)}:{stat.st_size}:{stat.st_mtime_ns}"
        pixels = np.asarray(self.load())
        return "pixels:" + hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "image"}
        if isinstance(self.source, str):
            out["path"] = self.source
        else:
            buffer = io.BytesIO()
            self.load().save(buffer, format="PNG")
            out["png_base64"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        if self.georef is not None:
            out["georef"] = self.georef.to_dict()
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageSegment) and self.georef == other.georef and (
            self.source == other.source if isinstance(self.source, str) and isinstance(other.source, str)
            else self.content_key() == other.content_key())

    def __hash__(self) -> int:
        return hash(self.content_key())


@dataclass(frozen=True)
class BoxSegment:
    """A region ``(x1, y1, x2, y2)`` of an image in the same input.

    ``units`` must be stated: ``"pixel"`` (image coordinates, origin top-left) or ``"normalized"`` (0-1 of width
    and height). ``image`` is the index, among the input's image segments, of the image the box lies on;
    ``None`` means the nearest preceding image. A normalised box may stand alone (no image) for text backbones.
    """

    bbox_xyxy: tuple[float, float, float, float]
    units: BoxUnits
    image: int | None = None
    kind: str = field(default="box", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.units not in ("pixel", "normalized"):
            raise GeovecInputError("box.units", f"must be 'pixel' or 'normalized', got {self.units!r}")
        if isinstance(self.bbox_xyxy, (str, bytes)) or len(self.bbox_xyxy) != 4:
            raise GeovecInputError("box.bbox_xyxy", f"needs 4 numbers x1, y1, x2, y2, got {self.bbox_xyxy!r}")
        x1, y1, x2, y2 = (_finite(f"box.bbox_xyxy[{i}]", v) for i, v in enumerate(self.bbox_xyxy))
        if x2 <= x1 or y2 <= y1:
            raise GeovecInputError("box.bbox_xyxy", f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is inverted or empty: "
                                   "need x1 < x2 and y1 < y2")
        if min(x1, y1) < 0 or (self.units == "normalized" and max(x2, y2) > 1):
            limit = "[0, 1]" if self.units == "normalized" else "the image"
            raise GeovecInputError("box.bbox_xyxy", f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside {limit}")
        object.__setattr__(self, "bbox_xyxy", (x1, y1, x2, y2))

    def normalized(self, image_size: tuple[int, int] | None) -> tuple[float, float, float, float]:
        """The box in 0-1 units (pixel boxes need the size of the image they lie on)."""
        if self.units == "normalized":
            return self.bbox_xyxy
        if image_size is None:
            raise GeovecInputError("box", "a pixel box needs an image to lie on")
        w, h = image_size
        x1, y1, x2, y2 = self.bbox_xyxy
        return (x1 / w, y1 / h, x2 / w, y2 / h)

    def pixels(self, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = self.normalized(image_size)
        w, h = image_size
        return (x1 * w, y1 * h, x2 * w, y2 * h)

    def crop_box(self, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The whole pixels a crop of this box takes (what box-crop models cut, and cache, by)."""
        return tuple(round(v) for v in self.pixels(image_size))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "box", "bbox_xyxy": list(self.bbox_xyxy), "units": self.units}
        if self.image is not None:
            out["image"] = self.image
        return out


@dataclass(frozen=True)
class PointSegment:
    """A geographic point in WGS84 decimal degrees."""

    lat: float
    lon: float
    kind: str = field(default="point", init=False, repr=False)

    def __post_init__(self) -> None:
        lat = _finite("point.lat", self.lat)
        lon = _finite("point.lon", self.lon)
        if not -90.0 <= lat <= 90.0:
            raise GeovecInputError("point.lat", f"latitude {lat:g} is outside [-90, 90]")
        if not -180.0 <= lon <= 180.0:
            raise GeovecInputError("point.lon", f"longitude {lon:g} is outside [-180, 180]")
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lon", lon)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "point", "lat": self.lat, "lon": self.lon}


Segment = Union[TextSegment, ImageSegment, BoxSegment, PointSegment]


@dataclass(frozen=True)
class Interleaved:
    """One embeddable input: an optional task instruction and an ordered, non-empty tuple of segments.

    Boxes are checked against the image they lie on (a pixel box must fit inside it) when the input is made.
    """

    segments: tuple[Segment, ...]
    instruction: str | None = None

    def __post_init__(self) -> None:
        segments = tuple(self.segments)
        object.__setattr__(self, "segments", segments)
        if not segments:
            raise GeovecInputError("segments", "empty query: give at least one text, image, box or point")
        if self.instruction is not None and (not isinstance(self.instruction, str) or not self.instruction.strip()):
            raise GeovecInputError("instruction", "must be a non-empty string or omitted")
        if self.instruction is not None:
            check_utf8("instruction", self.instruction)
        images: list[ImageSegment] = []
        for position, segment in enumerate(segments):
            if isinstance(segment, ImageSegment):
                images.append(segment)
            elif isinstance(segment, BoxSegment):
                self._check_box(position, segment, images)
            elif not isinstance(segment, (TextSegment, PointSegment)):
                raise GeovecInputError(f"segments[{position}]", f"not a segment: {type(segment).__name__}")

    @staticmethod
    def _check_box(position: int, box: BoxSegment, images_so_far: list[ImageSegment]) -> None:
        name = f"segments[{position}]"
        if box.image is not None and not 0 <= box.image < len(images_so_far):
            raise GeovecInputError(f"{name}.image", f"box refers to image {box.image}, but only "
                                   f"{len(images_so_far)} image(s) precede it")
        if box.image is None and not images_so_far:
            if box.units == "pixel":
                raise GeovecInputError(name, "a pixel box needs an image segment before it")
            return
        image = images_so_far[box.image if box.image is not None else -1]
        if box.units == "pixel":
            w, h = image.size
            x1, y1, x2, y2 = box.bbox_xyxy
            if x2 > w or y2 > h:
                raise GeovecInputError(f"{name}.bbox_xyxy", f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside "
                                       f"the {w}x{h} image {image.describe()}")

    def image_for(self, position: int) -> ImageSegment | None:
        """The image that the box at ``position`` lies on (``None`` for a free-standing normalised box)."""
        box = self.segments[position]
        assert isinstance(box, BoxSegment)
        images = [s for s in self.segments[:position] if isinstance(s, ImageSegment)]
        if not images:
            return None
        return images[box.image if box.image is not None else -1]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(s.kind for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"segments": [s.to_dict() for s in self.segments]}
        if self.instruction is not None:
            out["instruction"] = self.instruction
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interleaved:
        if not isinstance(data, dict):
            raise GeovecInputError("input", f"expected a JSON object, got {type(data).__name__}")
        raw_segments = data.get("segments")
        if not isinstance(raw_segments, list):
            raise GeovecInputError("segments", "missing or not a list")
        return cls(tuple(segment_from_dict(s, f"segments[{i}]") for i, s in enumerate(raw_segments)),
                   instruction=data.get("instruction"))

    def cache_key(self) -> str:
        """Identity of the input for embedding caches (pixels of in-memory images are hashed)."""
        parts = [f"instruction={self.instruction!r}"]
        for segment in self.segments:
            if isinstance(segment, ImageSegment):
                parts.append(f"image={segment.content_key()};georef={segment.georef}")
            else:
                parts.append(repr(segment.to_dict()))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def segment_from_dict(data: Any, name: str = "segment") -> Segment:
    """Parse one JSON segment; errors name the field (``segments[2].lat``)."""
    if not isinstance(data, dict):
        raise GeovecInputError(name, f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    try:
        if kind == "text":
            return TextSegment(data.get("text"))  # type: ignore[arg-type]
        if kind == "image":
            georef = data.get("georef")
            ref = GeoRef(georef.get("crs"), tuple(georef.get("transform", ()))) if isinstance(georef, dict) else None
            if "png_base64" in data:
                try:
                    raw = base64.b64decode(data["png_base64"], validate=True)
                    with _open_image(io.BytesIO(raw), "png_base64") as im:
                        return ImageSegment(im.convert("RGB"), georef=ref)
                except GeovecInputError:
                    raise  # too big: already says so
                except (ValueError, UnidentifiedImageError, OSError) as exc:
                    raise GeovecInputError("image", f"png_base64 is not a valid image: {exc}") from None
            if "path" not in data:
                raise GeovecInputError("image", "needs 'path' or 'png_base64'")
            return ImageSegment(data["path"], georef=ref)
        if kind == "box":
            if "units" not in data:
                raise GeovecInputError("box.units", "must be stated: 'pixel' or 'normalized'")
            return BoxSegment(tuple(data.get("bbox_xyxy") or ()), data["units"], data.get("image"))  # type: ignore[arg-type]
        if kind == "point":
            return PointSegment(data.get("lat"), data.get("lon"))  # type: ignore[arg-type]
    except GeovecInputError as exc:
        raise GeovecInputError(f"{name}.{exc.field.split('.', 1)[-1]}", exc.problem) from None
    raise GeovecInputError(f"{name}.type", f"unknown segment type {kind!r}; expected one of {', '.join(SEGMENT_KINDS)}")


InputLike = Union[Interleaved, str, Segment, Sequence[Segment]]


def as_input(value: InputLike, instruction: str | None = None) -> Interleaved:
    """Coerce a string, a segment or a list of segments into an ``Interleaved`` input."""
    if isinstance(value, Interleaved):
        if instruction is not None and value.instruction is None:
            return Interleaved(value.segments, instruction)
        return value
    if isinstance(value, str):
        if not value.strip():
            raise GeovecInputError("query", "empty query")
        return Interleaved((TextSegment(value),), instruction)
    if isinstance(value, (TextSegment, ImageSegment, BoxSegment, PointSegment)):
        return Interleaved((value,), instruction)
    if isinstance(value, (list, tuple)):
        return Interleaved(tuple(value), instruction)
    raise GeovecInputError("query", f"cannot embed a {type(value).__name__}; give text, segments or Interleaved")


def image_files(items: Iterable[Interleaved]) -> list[str]:
    """The distinct image files the ``items`` read, in first-seen order (in-memory images have none): what a
    feature cache must cover."""
    return list(dict.fromkeys(segment.path for item in items for segment in item.segments
                              if isinstance(segment, ImageSegment) and segment.path is not None))


def image_crops(items: Iterable[Interleaved]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The distinct (image file, crop box) pairs that the boxes of ``items`` cut from image files, in first-seen
    order: what a feature cache must cover for a model that reads a box's pixels."""
    crops = []
    for item in items:
        for position, segment in enumerate(item.segments):
            image = item.image_for(position) if isinstance(segment, BoxSegment) else None
            if image is not None and image.path is not None:
                crops.append((image.path, segment.crop_box(image.size)))  # type: ignore[union-attr]
    return list(dict.fromkeys(crops))
