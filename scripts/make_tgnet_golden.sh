#!/usr/bin/env bash
# Whole-model PyTorch goldens for test/tgnet/golden.test.ts: one small safetensors file per TGNet variant
# (random weights "model.*", input, task_ids, target, logits, loss, parameter gradients "grad.*"), written by the
# repository's PyTorch twin (bench/torch/tgnet_torch.py) with Debian's PyTorch (apt-get install -y python3-torch).
# Width 2 keeps each file under 1 MB (width 4 has 286k parameters: 2.4 MB of weights and gradients). At width 2 the
# bottleneck's group norms have one channel per group, so the crop is 16x16x32 (bottleneck 1x1x2 voxels): over a
# single voxel they would output their bias whatever the input, and no gradient would cross the bottleneck.
# Usage: scripts/make_tgnet_golden.sh [out_dir]   (PYTHON overrides /usr/bin/python3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../test/golden}"
twin="$here/../bench/torch/tgnet_torch.py"
py="${PYTHON:-/usr/bin/python3}"
common=(--crop 16 16 32 --width 2 --batch 2)
# Seeds chosen so that each batch mixes two tasks, covering per-sample task codes and both kinds of unannotated
# channel (colon and lung lack the organ, spleen the tumour): tgnet colon + hepatic vessel, tgnet-all kidney +
# spleen, tgnet-a kidney + pancreas, dodnet spleen + pancreas, spatial lung + liver, serial liver + colon,
# parallel kidney + lung; and so that PyTorch's own float32 gradients stay within 2e-3 of float64 (relative to each
# tensor's largest): the one-voxel-per-group bottleneck makes some seeds ill-conditioned (up to 1e-1 off).
# tgnet-all is tgnet with every encoder block task-guided (TGNet taskGuidedBlocks 'all').
gen() { "$py" "$twin" --golden "$out/tgnet_$1.safetensors" "${common[@]}" --seed "$2" "${@:3}"; }
gen tgnet 3
gen tgnet-all 5 --task-guided-blocks all
gen tgnet-a 5 --variant tgnet-a
gen dodnet 0 --variant dodnet
gen spatial 4 --variant spatial
gen serial 1 --variant serial
gen parallel 2 --variant parallel
ls -l "$out"/tgnet_*.safetensors
