"""RSMEB's task categories and the instructions its inputs are embedded with, below models and the benchmark.

Instruction-tuned models (geovec-mini, the VLM encoders) phrase their inputs exactly as the benchmark does, and the
training data copies the same words; keeping the strings here lets them do so without importing any task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Category = Literal["scene-classification", "cross-modal-retrieval", "compositional-retrieval", "vqa", "region",
                   "geo-localization"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Instructions:
    """What a task's queries and its candidates are prefixed with when embedded."""

    query: str
    candidate: str


SCENE_CLASSIFICATION = Instructions("Represent the given remote-sensing image for scene classification:",
                                    "Represent the scene class name:")
IMAGE_TEXT_RETRIEVAL = Instructions(
    "Represent the given remote-sensing image for retrieving its caption:",
    "Represent the caption for retrieving the remote-sensing image it describes:")
COMPOSED_RETRIEVAL = Instructions(
    "Retrieve a remote-sensing image like the given one but with the attribute the text names:",
    "Represent the given remote-sensing image:")
VISUAL_QUESTION_ANSWERING = Instructions("Represent the given remote-sensing image with the following question:",
                                         "Represent the answer:")
REFERRING_EXPRESSION = Instructions(
    "Represent the given remote-sensing image with this description of an object in it:",
    "Represent the given remote-sensing image with the marked region:")
REGION_CAPTION = Instructions("Represent the marked region of the given remote-sensing image:",
                              "Represent the description of an object in a remote-sensing image:")
REGION_MATCHING = Instructions("Represent the marked region of the given remote-sensing image:",
                               "Represent the given remote-sensing image crop:")
IMAGE_TO_POINT = Instructions("Represent the given remote-sensing image for finding where it was taken:",
                              "Represent the geographic location:")
POINT_TO_IMAGE = Instructions("Represent the geographic location for retrieving a remote-sensing image taken there:",
                              "Represent the given remote-sensing image:")
PLACE_TO_POINT = Instructions("Represent the place name for finding its geographic location:",
                              "Represent the geographic location:")
POINT_TO_PLACE = Instructions("Represent the geographic location for finding the place there:",
                              "Represent the place name:")
