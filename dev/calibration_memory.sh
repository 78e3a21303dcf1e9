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
echo "hidden 1024, ffn 2816, 8 heads, f16; gptq int4 g128 toward q4_K; calibration 16 x 256 tokens of C4"
echo "| layers | file MiB | peak RSS MiB (VmHWM) | seconds |"
echo "|---:|---:|---:|---:|"
for L in $LAYERS; do
  f=$TMP/syn-$L.gguf
  "$B/make_synthetic_gguf" "$f" --layers "$L" --hidden 1024 --ffn 2816 --heads 8 --kv-heads 8 >/dev/null
  log=$("$B/lowbit" quantize "$f" --type q4_K --method gptq --calib "$SHARED/text/c4_sample.jsonl" \
        --nsamples 16 --seqlen 256 -o "$TMP/out.gguf" 2>&1)
  peak=$(echo "$log" | grep -oE 'peak memory [0-9]+ MiB' | tail -1 | grep -oE '[0-9]+')
  secs=$(echo "$log" | grep -oE '[0-9.]+ s, peak memory' | tail -1 | cut -d' ' -f1)
  echo "| $L | $(( $(stat -c %s "$f") / 1048576 )) | $peak | $secs |"
done
