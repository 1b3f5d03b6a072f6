"""The canonical text rendering of boxes and coordinates for language-model backbones.

Rendering version ``RENDERING_VERSION`` (saved with every trained model and index, so a change is detectable):

* box   -> ``<box>(x1,y1),(x2,y2)</box>`` with integer corners on a 0-1000 grid of the image's width and
  height (the Qwen2-VL convention), rounded half away from zero and clamped to [0, 1000];
* point -> ``<loc>lat, lon</loc>`` in WGS84 decimal degrees with 4 decimals (about 11 m), latitude first;
* image -> ``<image>`` placeholder (backbones that see pixels replace it with their image tokens);
* text  -> as given.

Segments are joined with single spaces; an instruction, when present, comes first on its own line.
"""

from __future__ import annotations

import math

from geovec.inputs.segments import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment

RENDERING_VERSION = 1
IMAGE_PLACEHOLDER = "<image>"


def _grid(value: float) -> int:
    scaled = value * 1000.0
    rounded = math.floor(scaled + 0.5) if scaled >= 0 else -math.floor(-scaled + 0.5)
    return min(1000, max(0, int(rounded)))


def render_box(normalized_xyxy: tuple[float, float, float, float]) -> str:
    """``<box>(x1,y1),(x2,y2)</box>`` on the 0-1000 grid from a box in 0-1 units."""
    x1, y1, x2, y2 = (_grid(v) for v in normalized_xyxy)
    return f"<box>({x1},{y1}),({x2},{y2})</box>"


def render_point(lat: float, lon: float) -> str:
    """``<loc>lat, lon</loc>`` with 4 decimals; -0.0 is written as 0.0000."""
    return f"<loc>{lat + 0.0:.4f}, {lon + 0.0:.4f}</loc>".replace("-0.0000", "0.0000")


def render_segments(item: Interleaved, image_placeholder: str = IMAGE_PLACEHOLDER) -> list[str]:
    """Each segment's text form, in order (images become ``image_placeholder``)."""
    parts: list[str] = []
    for position, segment in enumerate(item.segments):
        if isinstance(segment, TextSegment):
            parts.append(segment.text)
        elif isinstance(segment, ImageSegment):
            parts.append(image_placeholder)
        elif isinstance(segment, BoxSegment):
            image = item.image_for(position)
            parts.append(render_box(segment.normalized(image.size if image else None)))
        elif isinstance(segment, PointSegment):
            parts.append(render_point(segment.lat, segment.lon))
    return parts


def render_text(item: Interleaved, include_instruction: bool = True,
                image_placeholder: str = IMAGE_PLACEHOLDER) -> str:
    """The whole input as one string, instruction first."""
    body = " ".join(render_segments(item, image_placeholder))
    if include_instruction and item.instruction:
        return f"{item.instruction}\n{body}"
    return body
