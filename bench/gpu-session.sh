#!/usr/bin/env bash
# One call on a lent GPU machine: adapter info, correctness of the hardware code paths, the full bench, and
# PyTorch's figures on the same card. Prepare here, then run through the device tool:
#   bash ../shared/gpu/pack.sh && cp ../shared/reference/tgnet_ref.py .gpu/ && npm run build
#   device run  carry [".gpu", "dist"]  command "bash bench/gpu-session.sh"
# Results land in $OUT (the device tool's folder; ./gpu-out elsewhere). Record them in bench/RESULTS.md.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
run() { bash .gpu/on-gpu.sh "$@"; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } > "$out/card.txt" 2>&1
run node dist/src/cli/main.js info --json > "$out/info.json" 2> "$out/info.err"
timeout 240 bash .gpu/on-gpu.sh node dist/bench/verify.js > "$out/verify.jsonl" 2> "$out/verify.err"
echo "verify exit $?" >> "$out/verify.jsonl"
timeout 300 bash .gpu/on-gpu.sh node dist/bench/run.js --out "$out/bench.json" > "$out/bench.txt" 2>&1
if [[ -f .gpu/tgnet_ref.py ]] && python3 -c 'import torch' 2>/dev/null; then
  timeout 120 python3 .gpu/tgnet_ref.py --conv > "$out/torch-conv.jsonl" 2>&1
  timeout 120 python3 .gpu/tgnet_ref.py --iters 5 > "$out/torch-step.txt" 2>&1
fi
tail -n 3 "$out"/verify.jsonl "$out"/bench.txt
