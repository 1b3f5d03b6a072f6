"""Published mean-recall (mR, %) rows for RSITMD / RSICD image-text retrieval, printed beside our results.

Figures as reported in the TRSLLaVA and VLM2GeoVec papers (standard AMFMN test splits, 5 captions per image).
"""

from __future__ import annotations

PUBLISHED_MEAN_RECALL: dict[str, dict[str, float]] = {
    "RSITMD": {"zero-shot CLIP": 23.86, "TRSLLaVA": 42.62},
    "RSICD": {"zero-shot CLIP ViT-B/32": 15.59, "AMFMN": 16.42, "GaLR": 18.96, "TRSLLaVA": 31.33,
              "RemoteCLIP": 35.26},
}
