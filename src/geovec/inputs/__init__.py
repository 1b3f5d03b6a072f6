"""Interleaved inputs (text, image, box, point + instruction), their validation, JSON form and text rendering."""

from geovec.inputs.render import RENDERING_VERSION, render_box, render_point, render_segments, render_text
from geovec.inputs.segments import (
    SEGMENT_KINDS,
    BoxSegment,
    GeoRef,
    ImageSegment,
    InputLike,
    Interleaved,
    PointSegment,
    Segment,
    TextSegment,
    as_input,
    image_crops,
    image_files,
    segment_from_dict,
)
from geovec.inputs.text import check_utf8

__all__ = [
    "SEGMENT_KINDS", "BoxSegment", "GeoRef", "ImageSegment", "InputLike", "Interleaved", "PointSegment", "Segment",
    "TextSegment", "as_input", "image_crops", "image_files", "segment_from_dict", "RENDERING_VERSION", "render_box",
    "render_point", "render_segments", "render_text", "check_utf8",
]
