"""Training data for VLM2GeoVec: RSMEB datasets' training splits as instruction-tagged examples, mixed per task.

``build_training_data(["rsicd-captions", "rsicd-scenes"], "out/", data_dir())`` writes ``out/train.jsonl`` and
``out/manifest.json``; every example carries the instructions of its RSMEB task, and no example may use an item an
RSMEB task evaluates on (``LeakError``).
"""

from geovec.train.data.builders import SOURCES, Job, Source, get_source
from geovec.train.data.leaks import HELD_OUT_SPLITS, HeldOut, LeakError, check_leaks, held_out
from geovec.train.data.mix import build_training_data, mix

__all__ = ["SOURCES", "Job", "Source", "get_source", "HELD_OUT_SPLITS", "HeldOut", "LeakError",
           "check_leaks", "held_out", "build_training_data", "mix"]
