#!/bin/bash
# Ship a pretrained backbone candidate: make it checkpoints/backbone.safetensors, re-enroll the
# sample recognizer on it, re-measure what its model card quotes, and rewrite the card.
#
#   bash scripts/ship_backbone.sh runs/hybrid/l4.best.safetensors                           # from scratch
#   bash scripts/ship_backbone.sh runs/backbone_s3/backbone.best.safetensors --continues   # --init from the shipped one
#
# --continues: the candidate's run started from the shipped backbone (pretrain --init), so the
# shipped run's history becomes the next backbone_stageN.json; otherwise earlier stages go.
# ~15 min on one core. Afterwards re-run the benchmarks that use the sample recognizer or the
# backbone (README: bench.forgetting --gallery sample, bench.sizes, bench.classroom,
# bench.load; bench.forgetting --select for LFW-100, ~1 h) and update the README's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cand=${1:?usage: ship_backbone.sh CANDIDATE.safetensors [--continues]}
hist=${cand%.safetensors}.json
[[ -f $cand && -f $hist ]] || { echo "error: need $cand and its history $hist" >&2; exit 2; }
py=${PYTHON:-python}
"$py" - "$cand" <<'PY'
import sys
from gslora_core.model import read_metadata
meta = read_metadata(sys.argv[1])
if meta["class_names"] or meta.get("tasks"):
    sys.exit("error: not a pretrained backbone (it has classes or forgetting tasks)")
PY
if [[ ${2:-} == --continues ]]; then
  n=$(ls checkpoints/backbone_stage*.json 2>/dev/null | wc -l)
  mv checkpoints/backbone.json "checkpoints/backbone_stage$((n + 1)).json"
else
  rm -f checkpoints/backbone_stage*.json
fi
cp "$cand" checkpoints/backbone.safetensors
cp "$hist" checkpoints/backbone.json
# The sample's crops made afresh with 2 torch threads (MTCNN's crops move by a grey level with
# the thread count), or read from the crops shipped beside it while the face template is the
# same: its kept states, which enroll writes, fit those crops (checkpoints/README.md).
crops=$(mktemp -d)
GSLORA_CACHE=$crops OMP_NUM_THREADS=2 "$py" -m gslora_core enroll --backbone checkpoints/backbone.safetensors \
  --gallery assets/sample_gallery --split rank --out checkpoints/sample_recognizer.safetensors > /dev/null
# Those crops ship beside the sample (assets/sample_gallery_crops): no alignment on loading it.
GSLORA_CACHE=$crops "$py" scripts/ship_sample_crops.py
rm -rf "$crops"
"$py" -m bench.backbone --out bench/results/backbone.json
"$py" -m bench.robustness --backbone checkpoints/backbone.safetensors --out bench/results/robustness.json
"$py" scripts/write_model_card.py
echo "shipped $cand; now re-run the dependent benchmarks (see this script's header) and the tests"
