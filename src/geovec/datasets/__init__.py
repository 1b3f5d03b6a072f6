"""Readers for public remote-sensing datasets in their published on-disk layouts."""

from geovec.datasets.captions import CaptionedImage, read_caption_split

__all__ = ["CaptionedImage", "read_caption_split"]
