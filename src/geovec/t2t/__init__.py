"""Text-to-text retrieval (TRSLLaVA): images represented by descriptions, matched in one text space."""

from geovec.t2t.corpus import (Description, human_caption_corpus, karpathy_caption_corpus, read_corpus,
                              retrieval_split_corpus, write_corpus)
from geovec.t2t.retrieval import AGGREGATIONS, DescriptionIndex, image_scores

__all__ = ["AGGREGATIONS", "Description", "DescriptionIndex", "human_caption_corpus", "image_scores",
           "karpathy_caption_corpus", "read_corpus", "retrieval_split_corpus", "write_corpus"]
