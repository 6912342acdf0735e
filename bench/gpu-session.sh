#!/usr/bin/env bash
# One call on a lent GPU machine (at most 600 s): adapter, correctness of the hardware code paths, the bench
# (conv3d, the TGNet step, its cost and the full-config peak memory), the conv3d autotuner and the tuned bench,
# PyTorch's figures on the same card (the repository's twin, bench/torch/tgnet_torch.py, with the machine's CUDA
# PyTorch), and the machine-readable summary lines for bench/RESULTS.md.
# Prepare here with `npm run build`, then run `bash bench/gpu-session.sh` on the GPU machine with dist/ (and, if
# that machine has no Node of its own, a .gpu/ folder whose on-gpu.sh runs Node with node_modules and the loader).
# Results land in $OUT (the device tool's folder; ./gpu-out elsewhere): one file per stage, stages.txt (exit
# status and seconds of each), summary.txt. A stage that times out leaves what it wrote; later stages still run.
# GPU_SESSION_QUICK=1 shortens every stage (a dry run of the script itself, e.g. on lavapipe).
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
quick=${GPU_SESSION_QUICK:-}
# Node runs through .gpu/on-gpu.sh (Node, node_modules and the Vulkan loader) when it is there.
node_cmd=(node)
[[ -f .gpu/on-gpu.sh ]] && node_cmd=(bash .gpu/on-gpu.sh node)
# stage NAME SECONDS command...: stdout and stderr to $OUT/NAME.txt, the outcome to stages.txt.
stage() {
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "$name exit $rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$out/stages.txt"
}
: > "$out/stages.txt"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader > "$out/card.txt" 2>&1
fi
export TGNET_TUNING_FILE=$out/conv3d-tuning.json
stage info 40 "${node_cmd[@]}" dist/src/cli/main.js info --json
stage verify 60 "${node_cmd[@]}" dist/bench/verify.js
if [[ -n $quick ]]; then
  stage bench 300 "${node_cmd[@]}" dist/bench/run.js --quick --only conv3d,tgnetStep,stepCost --out "$out/bench.json"
  stage tune 200 "${node_cmd[@]}" dist/src/cli/main.js tune --width 4
  stage bench-tuned 200 "${node_cmd[@]}" dist/bench/run.js --quick --tuned --only tgnetStep --out "$out/bench-tuned.json"
else
  stage bench 150 "${node_cmd[@]}" dist/bench/run.js --only conv3d,tgnetStep,stepCost --out "$out/bench.json"
  stage tune 100 "${node_cmd[@]}" dist/src/cli/main.js tune
  stage bench-tuned 80 "${node_cmd[@]}" dist/bench/run.js --tuned --only conv3d,tgnetStep --out "$out/bench-tuned.json"
fi
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  stage torch-conv 50 python3 bench/torch/tgnet_torch.py --conv
  stage torch-step 100 python3 bench/torch/tgnet_torch.py --iters 5 --modes fp32,tf32,fp16,bf16
else
  echo "torch: no CUDA PyTorch: PyTorch figures skipped" | tee -a "$out/stages.txt"
fi
"${node_cmd[@]}" dist/bench/gpu-summary.js "$out" | tee "$out/summary.txt"
