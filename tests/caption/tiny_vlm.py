"""Builders of tiny randomly initialised Qwen2-VL and LLaVA-NeXT checkpoints: real architectures and processors.

The tokenizer is a byte-level BPE with the full byte alphabet, a few merges and the chat/vision special tokens;
both checkpoints share it. Image processors are the slow PIL ones (no torchvision here), set to tiny sizes so a
224x224 RSICD image becomes a handful of image tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                          LlavaNextImageProcessor, LlavaNextProcessor, Qwen2Config, Qwen2Tokenizer, Qwen2VLConfig,
                          Qwen2VLForConditionalGeneration)
from transformers.models.clip.tokenization_clip import bytes_to_unicode
from transformers.models.qwen2_vl import Qwen2VLImageProcessor

MERGES = ["t h", "th e", "a n", "i n", "o r", "Ġ t", "Ġ a", "e r", "r e", "o n"]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
           "<image>"]
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for content in "
                 "message['content'] %}{% if content['type'] == 'image' %}<image>\n{% elif content['type'] == 'text' "
                 "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAVA_GRID = [[28, 28], [28, 56], [56, 28], [56, 56]]
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=1024)


def _ids(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    return dict(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id)


def build_tokenizer(root: Path) -> Qwen2Tokenizer:
    """A byte-level BPE over the full byte alphabet plus the chat and vision special tokens."""
    raw = root / "raw_tokenizer"
    raw.mkdir(parents=True)
    tokens = dict.fromkeys(list(bytes_to_unicode().values()) + ["".join(m.split()) for m in MERGES])
    (raw / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (raw / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    tokenizer = Qwen2Tokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    return tokenizer


def build_qwen2_vl(folder: Path, tokenizer: Qwen2Tokenizer, image_tokens: int = 4) -> Path:
    """A Qwen2-VL checkpoint whose image processor makes every image ``image_tokens`` (a square) tokens."""
    token = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]},
                         **TEXT, **_ids(tokenizer)),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=token("<|image_pad|>"), video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"), vision_end_token_id=token("<|vision_end|>"),
        **_ids(tokenizer))
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    side = 28 * round(image_tokens ** 0.5)  # 14-pixel patches, merged 2x2
    Qwen2VLImageProcessor(min_pixels=side * side, max_pixels=side * side).save_pretrained(folder)
    return folder


def build_llava_next(folder: Path, tokenizer: Qwen2Tokenizer) -> Path:
    """A LLaVA-NeXT checkpoint (CLIP vision tower, Qwen2 language model) with its processor and chat template."""
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, projection_dim=32),
        text_config=Qwen2Config(vocab_size=len(tokenizer), **TEXT, **_ids(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_grid_pinpoints=LLAVA_GRID,
        vision_feature_layer=-1, **_ids(tokenizer))
    torch.manual_seed(0)
    LlavaNextForConditionalGeneration(config).save_pretrained(folder)
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                              image_grid_pinpoints=LLAVA_GRID)
    LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                       vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE, image_token="<image>",
                       num_additional_image_tokens=1).save_pretrained(folder)
    return folder
