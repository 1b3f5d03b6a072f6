"""TRSLLaVA-style captioning: a local VLM describes every image (RSRT prompts) into a text-to-text corpus.

Names are imported on first use (PEP 562), so reading the prompt sets or quality checks (``geovec caption --help``)
does not load torch and transformers, which ``backends`` needs.
"""

from __future__ import annotations

from geovec.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "backends": ("FAMILIES", "CaptionModel", "Generation", "load_caption_model"),
    "pipeline": ("CaptionReport", "Failure", "caption_images", "failure_report_path", "list_images"),
    "prompts": ("DEFAULT_PROMPT_VERSION", "PROMPT_SETS", "Prompt", "PromptSet", "get_prompt_set"),
    "quality": ("ALL_CHECKS", "CHECKS", "Candidate", "failure_reason"),
})
