#!/usr/bin/env bash
# Perplexity of RTN, GPTQ and AWQ on stories260K (the issue-4 results table).
# Calibrates on C4 (../shared/text/c4_sample.jsonl), evaluates on held-out
# TinyStories validation text; integer groups are evaluated in memory
# (`quantize --ppl` without -o), GGUF mixes are written and scored with `lowbit ppl`.
# Usage: bash dev/gptq_awq_table.sh [build/lowbit] [GROUP] [int|gguf|all]   (GROUP default -1: per row)
set -euo pipefail
LB=${1:-build/lowbit}
G=${2:--1}
PART=${3:-all}
SHARED=$(cd "$(dirname "$0")/../../shared" && pwd)
M=$SHARED/models/stories260K/stories260K-f32.gguf
C4=$SHARED/text/c4_sample.jsonl
TXT=$SHARED/text/tinystories_val.txt
CAL="--calib $C4 --nsamples 128 --seqlen 512 --seed 0"
EVAL="-c 128"   # every 128-token window of the text, llama.cpp protocol
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ppl_of() { grep -oE '(PPL = |ppl +)[0-9.]+ \+/- [0-9.]+' | sed -E 's/(PPL = |ppl +)//'; }

echo "model $M, eval $TXT ($EVAL), calibration $C4 (128 x 512 tokens, seed 0), group $G"
echo
if [ "$PART" != gguf ]; then
echo "| weights | bits | RTN | GPTQ | AWQ |"
echo "|---|---:|---:|---:|---:|"
echo "| fp32 | 32 | $($LB ppl "$M" -f "$TXT" $EVAL 2>&1 | ppl_of) | | |"
for b in 4 3 2; do
  row="| int$b g$G asym | $b |"
  for meth in rtn gptq awq; do
    row="$row $($LB quantize "$M" --method $meth --bits $b --group-size "$G" $CAL --ppl "$TXT" --ppl-ctx 128 2>&1 | ppl_of) |"
  done
  echo "$row"
done
echo
fi
[ "$PART" != int ] || exit 0
echo "| GGUF mix | bits/weight | plain | GPTQ | AWQ |"
echo "|---|---:|---:|---:|---:|"
for t in Q4_K_M Q3_K_M Q2_K; do
  row="| $t |"
  bpw=""
  vals=""
  for meth in rtn gptq awq; do
    out=$TMP/$t-$meth.gguf
    log=$($LB quantize "$M" --type $t --method $meth $CAL -o "$out" 2>&1)
    [ -n "$bpw" ] || bpw=$(echo "$log" | grep -oE '[0-9.]+ bits per weight' | head -1 | cut -d' ' -f1)
    vals="$vals $($LB ppl "$out" -f "$TXT" $EVAL 2>&1 | ppl_of) |"
  done
  echo "$row $bpw |$vals"
done
