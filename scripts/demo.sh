#!/usr/bin/env bash
# The main job on the bundled sample model (../shared/models/stories260K):
# set up, build, then quantize stories260K with every method lowbit has at
# 8, 4, 3 and 2 bits, evaluate each against the original on TinyStories
# validation text (perplexity, KL divergence, top-1 agreement, size, speed)
# and write the table, report.json and a Pareto plot to demo-out/.
# Usage: scripts/demo.sh [OUT_DIR]   (default demo-out; a rerun reuses finished candidates)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
S=../shared
M=$S/models/stories260K/stories260K-f32.gguf
OUT=${1:-demo-out}
start=$SECONDS

echo; echo "== lowbit inspect $M"
build/lowbit inspect "$M" | head -12

echo; echo "== lowbit quantize --list (every method and format)"
build/lowbit quantize --list | head -16

# GGUF mixes (llama.cpp runs these files); integer groups by RTN / GPTQ / AWQ;
# HQQ; bitsandbytes NF4 / FP4 (+ double quant); k-means codebooks; LLM.int8(),
# W8A8 and W4A8 (int8 activations). "row" = one group per row; g32 = groups of
# 32 (stories260K's rows are 64 and 172 wide: 172-wide rows stay unquantized
# with g32, as the note column says). rtnNg32 is HQQ's baseline at equal groups;
# hqqNg64a0 groups along the output axis (hqq's own default), which fits all rows.
CANDIDATES=Q8_0,Q4_K_M,Q3_K_M,Q2_K,rtn8row,gptq8row,hqq8g64,llm.int8,w8a8
CANDIDATES+=,nf4,nf4dq,fp4,w4a8row
for b in 4 3 2; do CANDIDATES+=",rtn${b}row,gptq${b}row,awq${b}row,hqq${b}g32,rtn${b}g32,hqq${b}g64a0,kmeans${b}row"; done

echo; echo "== lowbit compare: $(tr ',' '\n' <<<"$CANDIDATES" | wc -l) candidates"
build/lowbit compare "$M" -f $S/text/tinystories_val.txt -c 128 --chunks 150 \
  --calib $S/text/c4_sample.jsonl --nsamples 32 --seqlen 256 --tg 16 \
  --candidates "$CANDIDATES" -o "$OUT"

echo; echo "== one of them as a file: NF4 with double quantization, bitsandbytes' Hugging Face layout"
build/lowbit quantize $S/models/stories260K-hf --tokenizer $S/models/stories260K/tok512.bin \
  --method nf4 --double-quant -o "$OUT/stories260K-nf4-dq" 2>&1 | grep -v "no tokenizer written" | tail -2
build/lowbit generate "$OUT/stories260K-nf4-dq" --tokenizer $S/models/stories260K/tok512.bin \
  -p "Once upon a time" -n 40 --temp 0 2>/dev/null | tail -2

echo; echo "demo finished in $((SECONDS - start)) s after the build; open $OUT/report.md and $OUT/pareto.svg"
