"""TRSLLaVA-style captioning: a local VLM describes every image (RSRT prompts) into a text-to-text corpus."""

from geovec.caption.backends import FAMILIES, CaptionModel, Generation, load_caption_model
from geovec.caption.pipeline import CaptionReport, Failure, caption_images, failure_report_path, list_images
from geovec.caption.prompts import DEFAULT_PROMPT_VERSION, PROMPT_SETS, Prompt, PromptSet, get_prompt_set
from geovec.caption.quality import ALL_CHECKS, CHECKS, Candidate, failure_reason

__all__ = ["ALL_CHECKS", "CHECKS", "DEFAULT_PROMPT_VERSION", "FAMILIES", "PROMPT_SETS", "Candidate", "CaptionModel",
           "CaptionReport", "Failure", "Generation", "Prompt", "PromptSet", "caption_images", "failure_reason",
           "failure_report_path", "get_prompt_set", "list_images", "load_caption_model"]
