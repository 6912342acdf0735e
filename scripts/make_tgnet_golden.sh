#!/usr/bin/env bash
# Whole-model PyTorch goldens for test/tgnet/golden.test.ts: one small safetensors file per TGNet variant
# (random weights "model.*", input, task_ids, target, logits, loss, parameter gradients "grad.*"), written by
# shared/reference/tgnet_ref.py with Debian's PyTorch (apt-get install -y python3-torch).
# Width 2 keeps each file under 1 MB (width 4 has 286k parameters: 2.4 MB of weights and gradients). At width 2 the
# bottleneck's group norms have one channel per group, so the crop is 16x16x32 (bottleneck 1x1x2 voxels): over a
# single voxel they would output their bias whatever the input, and no gradient would cross the bottleneck.
# Usage: scripts/make_tgnet_golden.sh [out_dir]   (TGNET_REF_DIR overrides where tgnet_ref.py is found)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../test/golden}"
ref=""
for dir in "${TGNET_REF_DIR:-}" "$here/../shared/reference" "$here/../../shared/reference" /work/shared/reference; do
  if [ -n "$dir" ] && [ -f "$dir/tgnet_ref.py" ]; then ref="$dir/tgnet_ref.py"; break; fi
done
if [ -z "$ref" ]; then
  echo "make_tgnet_golden: tgnet_ref.py not found; set TGNET_REF_DIR to the folder holding it" >&2
  exit 1
fi
py="${PYTHON:-/usr/bin/python3}"
common=(--crop 16 16 32 --width 2 --batch 2)
# Seeds chosen so that each batch mixes two tasks, covering per-sample task codes and both kinds of unannotated
# channel (colon and lung lack the organ, spleen the tumour): tgnet colon + hepatic vessel, tgnet-all kidney +
# spleen, tgnet-a kidney + pancreas, dodnet spleen + pancreas, spatial lung + liver, serial liver + colon,
# parallel kidney + lung; and so that PyTorch's own float32 gradients stay within 2e-3 of float64 (relative to each
# tensor's largest): the one-voxel-per-group bottleneck makes some seeds ill-conditioned (up to 1e-1 off).
# tgnet-all is tgnet with every encoder block task-guided (TGNet taskGuidedBlocks 'all').
gen() { "$py" "$ref" --golden "$out/tgnet_$1.safetensors" "${common[@]}" --seed "$2" "${@:3}"; }
gen tgnet 3
gen tgnet-all 5 --tg-res-blocks all
gen tgnet-a 5 --no-tg-res
gen dodnet 0 --no-tg-res --no-tg-att
gen spatial 4 --no-tg-res --att spatial
gen serial 1 --no-tg-res --att serial
gen parallel 2 --no-tg-res --att parallel
ls -l "$out"/tgnet_*.safetensors
