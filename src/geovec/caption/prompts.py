"""Versioned RSRT-style prompt sets: the exact instructions a VLM is given, kept as data.

A description corpus is only comparable with another if both came from the same prompts, so every record names
its ``prompt_version`` and a published version is never edited: change the wording by adding a new set.
"""

from __future__ import annotations

from dataclasses import dataclass

from geovec.errors import GeovecInputError


@dataclass(frozen=True)
class Prompt:
    kind: str  # the Description.kind of what it produces, unique within a set
    text: str


@dataclass(frozen=True)
class PromptSet:
    version: str
    prompts: tuple[Prompt, ...]

    def __post_init__(self) -> None:
        kinds = [p.kind for p in self.prompts]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"prompt set {self.version}: variant kinds must be unique, got {kinds}")

    def first(self, variants: int | None) -> tuple[Prompt, ...]:
        """The first ``variants`` prompts (all when ``None``): fewer variants is a cheaper run of the same set."""
        if variants is None:
            return self.prompts
        if not 1 <= variants <= len(self.prompts):
            raise GeovecInputError("variants", f"expected 1 to {len(self.prompts)} for prompt set {self.version}, "
                                               f"got {variants}")
        return self.prompts[:variants]


# RSRT style (TRSLLaVA): several complementary descriptions per image, from short to long, so that text-to-text
# retrieval can match a query caption against whichever aspect it mentions.
RSRT_V1 = PromptSet("rsrt-v1", (
    Prompt("summary", "Describe this remote sensing image in one sentence."),
    Prompt("objects", "List the main objects visible in this remote sensing image and how many there are of each. "
                      "Answer in one or two sentences."),
    Prompt("relations", "Describe how the main objects in this remote sensing image are arranged relative to each "
                        "other (next to, surrounded by, along, crossing). Answer in one or two sentences."),
    Prompt("directions", "Describe where the main objects are located in this remote sensing image using "
                         "directions (top, bottom, left, right, center). Answer in one or two sentences."),
    Prompt("detailed", "Describe this remote sensing image in detail in one paragraph: the type of scene, the "
                       "objects, their colors, shapes and sizes, and how they are arranged."),
))

PROMPT_SETS = {s.version: s for s in (RSRT_V1,)}
DEFAULT_PROMPT_VERSION = RSRT_V1.version


def get_prompt_set(version: str) -> PromptSet:
    if version not in PROMPT_SETS:
        raise GeovecInputError("prompt_version", f"unknown prompt set {version!r}; known: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[version]
