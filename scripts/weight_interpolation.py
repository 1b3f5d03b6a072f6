"""Weight interpolation between a start checkpoint and one trained onward from it (WiSE-FT), chosen on validation.

    python scripts/weight_interpolation.py RECIPE.yaml START TUNED --alphas 0.25 0.5 0.75 --output OUT

Each candidate is (1 - a) * START + a * TUNED, tensor by tensor, with TUNED's settings; tensors only TUNED has
(a point tower added by the recipe) are TUNED's. Every candidate, START and TUNED are scored on the recipe's
``validation_file`` (its feature cache reused). The rule, fixed before looking: keep whole-image retrieval at
least as good as START's (validation ``mean_recall``), then take the best ``validation_score``. The chosen model
(if any) is saved to OUT, beside ``interpolation.json`` (every score). Used for geovec-mini 3.4 and 3.5
(results/geovec-mini-3.4/weight_interpolation.json).
"""
import argparse
import json
from pathlib import Path

import torch

from geovec.inputs import image_crops, image_files
from geovec.models.trainable import load_encoder
from geovec.train.config import load_config
from geovec.train.validation import HeldOutValidator

parser = argparse.ArgumentParser()
parser.add_argument("recipe")
parser.add_argument("start")
parser.add_argument("tuned")
parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 0.75])
parser.add_argument("--output", required=True)
args = parser.parse_args()

config = load_config(args.recipe)
validator = HeldOutValidator(config.validation_file)
inputs = validator.inputs()
start, tuned = load_encoder(args.start), load_encoder(args.tuned)
start_state, tuned_state = start.state_dict(), {k: v.clone() for k, v in tuned.state_dict().items()}
for encoder in (start, tuned):  # once each: every mix below is loaded into ``tuned``
    encoder.use_feature_cache(config.feature_cache, image_files(inputs), show_progress=False,
                              crops=image_crops(inputs))


def scored(encoder, name: str) -> dict[str, float]:
    scores = {k: round(v, 2) for k, v in validator.evaluate(encoder).items()}
    print(name, scores, flush=True)
    return scores


def mixed(alpha: float) -> dict[str, torch.Tensor]:
    return {k: (torch.lerp(start_state[k].to(v.dtype), v, alpha) if k in start_state and v.is_floating_point()
                else v) for k, v in tuned_state.items()}


rows = {"start": scored(start, "start"), "1.0": scored(tuned, "a=1.0")}
for alpha in args.alphas:
    tuned.load_state_dict(mixed(alpha))
    rows[str(alpha)] = scored(tuned, f"a={alpha}")
keep = [a for a in [*map(str, args.alphas), "1.0"] if rows[a]["mean_recall"] >= rows["start"]["mean_recall"]]
chosen = max(keep, key=lambda a: rows[a]["validation_score"]) if keep else None
print("chosen:", chosen or "none keeps START's whole-image mean_recall")
out = Path(args.output)
if chosen:
    tuned.load_state_dict(mixed(float(chosen)))
    tuned.save(out)
out.mkdir(parents=True, exist_ok=True)
(out / "interpolation.json").write_text(json.dumps(
    {"start": args.start, "tuned": args.tuned, "rule": "max validation_score with mean_recall >= start's",
     "chosen_alpha": float(chosen) if chosen else None, "validation": rows}, indent=2) + "\n")
