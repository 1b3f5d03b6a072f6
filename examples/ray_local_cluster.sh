#!/usr/bin/env bash
# Archive ingest on a Ray cluster, here a one-machine cluster: start a head node, ingest with `--ray auto`, stop.
# On a real cluster start the head and workers with `ray start` on each node (the archive and the checkpoint must be
# at the same paths everywhere) and point --ray at it: `--ray auto` on the head, or `--ray ray://HEAD:10001`.
#
#   examples/ray_local_cluster.sh [ARCHIVE] [INDEX] [CLIP_CHECKPOINT]
#
# Defaults: the shared data's geotiff/ folder, a fresh index under a temporary folder, and the test suite's tiny
# randomly initialised CLIP (so the example runs offline; pass a real CLIP/RemoteCLIP folder for real embeddings).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PY")
WORK=$(mktemp -d)
ARCHIVE=${1:-$("$PY" -c 'from geovec.config import data_dir; print(data_dir() / "geotiff")')}
INDEX=${2:-$WORK/index}
CHECKPOINT=${3:-}
if [ -z "$CHECKPOINT" ]; then
  CHECKPOINT=$("$PY" -c "import sys; sys.path.insert(0, 'tests'); from conftest import build_tiny_clip; from pathlib import Path; print(build_tiny_clip(Path('$WORK')))")
fi
export HF_HUB_OFFLINE=1
"$BIN/ray" start --head --num-cpus 2 --include-dashboard=false --disable-usage-stats
trap '"$BIN/ray" stop' EXIT
"$BIN/geovec" ingest "$ARCHIVE" --index "$INDEX" --model clip --model-path "$CHECKPOINT" --ray auto --ray-actors 1
"$BIN/geovec" ingest "$ARCHIVE" --index "$INDEX" --model clip --model-path "$CHECKPOINT" --ray auto  # rerun: nothing new
"$BIN/geovec" index info --index "$INDEX"
