#!/bin/bash
# The README's CLI task on a busy machine (issue 48): 3 busy processes on the 2 cores, then the
# task with --threads 2 (torch's default here) and with --threads 0 (auto: the free cores, at
# least 1). Writes bench/results/threads_cli.json.
#
#   bash scripts/threads_cli.sh        # ~1 min; run alone
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
out=runs/threads_cli
mkdir -p "$out"
hogs=()
for _ in 1 2 3; do "$py" -c "while True: pass" & hogs+=($!); done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
sleep 5
for t in 2 0 2 0; do
  "$py" -m gslora_core --threads "$t" forget --checkpoint checkpoints/sample_recognizer.safetensors \
    --gallery assets/sample_gallery --forget Bill_Clinton Serena_Williams \
    --out "$out/task_$t.safetensors" --report "$out/task_$t.json" > /dev/null
  "$py" - "$t" "$out/task_$t.json" >> "$out/rows.jsonl" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[2]))
print(json.dumps({"threads_flag": int(sys.argv[1]), "load_1min": os.getloadavg()[0],
                  "task_seconds": r["seconds"], "train_seconds": r["train_seconds"],
                  "steps": r["stop"]["steps"]}))
PY
done
"$py" - "$out/rows.jsonl" > bench/results/threads_cli.json <<'PY'
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"meta": {"date": time.strftime("%Y-%m-%d"), "command": "bash scripts/threads_cli.sh",
                           "load": "3 busy python processes on the machine's cores"},
                  "rows": rows}, indent=1))
PY
rm -f "$out/rows.jsonl"
