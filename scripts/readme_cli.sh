#!/bin/bash
# Re-run the README's command-line examples exactly as written and keep what the README quotes
# from them in bench/results/readme_cli/ (reports, and /usr/bin/time -v for seconds and peak RSS).
#
#   bash scripts/readme_cli.sh          # ~3 min on 2 cores; run alone, the seconds are quoted
#
# After shipping a backbone (scripts/ship_backbone.sh) the sample recognizer changes, and so does
# every number the README's "Run the app", "command line" and "Is the person gone" sections quote.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
out=bench/results/readme_cli
mkdir -p "$out" runs/inspect
gallery=assets/sample_gallery
timed() {  # timed NAME CMD...: run CMD; its progress (stderr) and the time report go to $out/NAME_time.txt
  local name=$1; shift
  /usr/bin/time -v "$@" 2> "$out/${name}_time.txt" > /dev/null || { cat "$out/${name}_time.txt" >&2; exit 1; }
}
timed task1 "$py" -m gslora_core forget --checkpoint checkpoints/sample_recognizer.safetensors \
  --gallery "$gallery" --forget Bill_Clinton Serena_Williams \
  --out runs/task1.safetensors --report runs/task1.json
timed task2 "$py" -m gslora_core forget --checkpoint runs/task1.safetensors --gallery "$gallery" \
  --forget Kofi_Annan --out runs/task2.safetensors --report runs/task2.json
"$py" -m gslora_core export --checkpoint runs/task2.safetensors --out runs/merged.safetensors > /dev/null
"$py" -m gslora_core evaluate --checkpoint runs/merged.safetensors --gallery "$gallery" \
  > "$out/merged_evaluate.json"
cp runs/task1.json runs/task2.json "$out/"
# The inspect example: its own forgetting run, then the three ways compared (retrain included).
"$py" -m gslora_core forget --checkpoint checkpoints/sample_recognizer.safetensors \
  --gallery "$gallery" --forget Bill_Clinton Serena_Williams \
  --out runs/inspect/forgot.safetensors --report runs/inspect/forget.json > /dev/null
secs=$("$py" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['seconds'], 1))" runs/inspect/forget.json)
"$py" -m gslora_core inspect --checkpoint runs/inspect/forgot.safetensors \
  --gallery "$gallery" --retrain --map --gslora-seconds "$secs" \
  --report runs/inspect/inspect.json > /dev/null
cp runs/inspect/forget.json "$out/inspect_forget.json"
cp runs/inspect/inspect.json "$out/inspect.json"
echo "wrote $out (inspect used --gslora-seconds $secs)"
