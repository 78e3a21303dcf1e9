#!/usr/bin/env bash
# Calibration-free methods against round-to-nearest at equal groups on
# stories260K (issue 5's comparisons), by perplexity on the first N windows of
# TinyStories validation text (llama.cpp protocol, ctx 128), in memory.
# ffn_down (172 inputs) is left unquantized for every row, so that groups of 32
# and 64 apply to the same tensors everywhere. "init only": HQQ's min/max start
# (float zero) without the half-quadratic solver, to separate the two.
# Usage: dev/calibration_free_table.sh [LOWBIT] [CHUNKS]
set -euo pipefail
cd "$(dirname "$0")/.."
L=${1:-build/lowbit}
N=${2:-150}
S=../shared
M=$S/models/stories260K-hf
T="--tokenizer $S/models/stories260K/tok512.bin"
ppl() {  # ppl LABEL ARGS...
  local label=$1; shift
  local out
  out=$("$L" quantize $M $T "$@" --skip-modules mlp.down_proj --ppl $S/text/tinystories_val.txt --ppl-chunks "$N" 2>&1)
  printf '| %-34s | %s | %s |\n' "$label" "$(grep -oE '[0-9.]+ bits per weight over them' <<<"$out" | cut -d' ' -f1)" \
    "$(grep -E '^ppl' <<<"$out" | awk '{print $2 " ± " $4}')"
}
echo "| method (ffn_down kept f32) | bpw of the quantized linears | PPL |"
echo "|---|---:|---:|"
ppl "rtn int8 row sym" --method rtn --bits 8 --group-size -1 --sym
ppl "llm.int8 (threshold 6)" --method llm.int8
ppl "w8a8" --method w8a8
ppl "rtn int4 g64 sym (absmax)" --method rtn --bits 4 --group-size 64 --sym
ppl "nf4 b64" --method nf4
ppl "nf4 b64 double quant" --method nf4 --double-quant
ppl "fp4 b64" --method fp4
for b in 4 3 2; do
  for g in 64 32; do
    ppl "rtn int$b g$g asym" --method rtn --bits $b --group-size $g
    ppl "hqq $b-bit g$g, init only (no solver)" --method hqq --bits $b --group-size $g --set optimize=false
    ppl "hqq $b-bit g$g" --method hqq --bits $b --group-size $g
  done
  ppl "hqq $b-bit g64 axis 0, init only" --method hqq --bits $b --group-size 64 --axis 0 --set optimize=false
  ppl "hqq $b-bit g64 axis 0 (hqq's default axis)" --method hqq --bits $b --group-size 64 --axis 0
done
for b in 4 3; do
  ppl "rtn int$b row asym" --method rtn --bits $b --group-size -1
  ppl "kmeans $b-bit row" --method kmeans --bits $b
done
