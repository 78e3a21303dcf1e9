#!/usr/bin/env bash
# Peak memory of `lowbit quantize --method gptq` on synthetic Llama models that
# differ only in their number of layers: the layer-by-layer pipeline should
# keep it flat (weights are memory-mapped; one layer's activations live at once).
# Usage: bash dev/calibration_memory.sh [BUILD_DIR] [LAYERS...]   (default: build 2 4 8)
set -euo pipefail
B=${1:-build}
shift || true
LAYERS=${*:-2 4 8}
SHARED=$(cd "$(dirname "$0")/../../shared" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "hidden 1024, ffn 2816, 8 heads, f16; gptq int4 g128 toward q4_K; calibration NSAMPLES x SEQLEN tokens of C4 (env, default 16 x 256)"
echo "| layers | file MiB | peak RSS MiB (VmHWM) | seconds |"
echo "|---:|---:|---:|---:|"
for L in $LAYERS; do
  f=$TMP/syn-$L.gguf
  "$B/make_synthetic_gguf" "$f" --layers "$L" --hidden 1024 --ffn 2816 --heads 8 --kv-heads 8 >/dev/null
  log=$("$B/lowbit" quantize "$f" --type q4_K --method gptq --calib "$SHARED/text/c4_sample.jsonl" \
        --nsamples "${NSAMPLES:-16}" --seqlen "${SEQLEN:-256}" -o "$TMP/out.gguf" 2>&1)
  # the progress lines end with "peak N MiB"; the last one is printed at 100%
  peak=$(echo "$log" | grep -oE 'peak [0-9]+ MiB' | tail -1 | grep -oE '[0-9]+' || true)
  secs=$(echo "$log" | grep -oE 'elapsed [0-9]+s' | tail -1 | grep -oE '[0-9]+' || true)
  echo "| $L | $(( $(stat -c %s "$f") / 1048576 )) | $peak | $secs |"
done
