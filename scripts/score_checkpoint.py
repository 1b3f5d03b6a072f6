"""Validation scores of a training checkpoint (the accelerate state a run writes every save_every steps).

    python scripts/score_checkpoint.py RECIPE.yaml OUT/checkpoints/step-N/model.safetensors

How the step-100 point of geovec-mini 2's validation curve was scored after the run (TRAINING.md).
"""
import sys
from safetensors.torch import load_file
from geovec.train.config import load_config
from geovec.train.trainer import build_encoder
from geovec.inputs import image_crops, image_files
from geovec.train.validation import HeldOutValidator

config = load_config(sys.argv[1])
encoder = build_encoder(config)
encoder.load_state_dict(load_file(sys.argv[2]))
validator = HeldOutValidator(config.validation_file)
inputs = validator.inputs()
encoder.use_feature_cache(config.feature_cache, image_files(inputs), show_progress=False, crops=image_crops(inputs))
print({k: round(v, 2) for k, v in validator.evaluate(encoder).items()})
