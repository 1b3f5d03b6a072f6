"""Readers of public remote-sensing datasets in their published on-disk layouts: the data layer.

One module per format family (``captions``, ``scenes``, ``rsvqa``, ``rsvg``, ``regions``, ``mosaics``,
``patterncom``, ``geo``); each reader is a pure function of files on disk returning the shapes of ``samples``
(``CandidateQuery`` lists, ``RetrievalSplit``, ``TextToTextSplit``) and raising ``DatasetError`` naming the file
and record. The benchmark,
the training-data builders, the T2T corpora and captioning all read through here. Instructions are never put into
inputs here: whoever embeds the data adds them.
"""

from geovec.datasets.captions import CaptionedImage, read_amfmn_split, read_caption_split, read_karpathy
from geovec.datasets.samples import (CandidateQuery, DatasetError, Reference, RetrievalSplit, TaskData,
                                     TextToTextSplit, check_unique_ids)

__all__ = ["CandidateQuery", "CaptionedImage", "DatasetError", "Reference", "RetrievalSplit", "TaskData",
           "TextToTextSplit", "check_unique_ids", "read_amfmn_split", "read_caption_split", "read_karpathy"]
