"""TRSLLaVA-style captioning: a local VLM describes every image (RSRT prompts) into a text-to-text corpus.

Names are imported on first use (PEP 562), so reading the prompt sets or quality checks (``geovec caption --help``)
does not load torch and transformers, which ``backends`` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "backends": ("FAMILIES", "CaptionModel", "Generation", "load_caption_model"),
    "pipeline": ("CaptionReport", "Failure", "caption_images", "failure_report_path", "list_images"),
    "prompts": ("DEFAULT_PROMPT_VERSION", "PROMPT_SETS", "Prompt", "PromptSet", "get_prompt_set"),
    "quality": ("ALL_CHECKS", "CHECKS", "Candidate", "failure_reason"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'geovec.caption' has no attribute {name!r}")
    return getattr(importlib.import_module(f"geovec.caption.{_MODULE_OF[name]}"), name)
