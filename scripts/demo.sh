#!/usr/bin/env bash
# The main job on the bundled sample model (../shared/models/stories260K):
# set up, build, inspect the model, measure its perplexity on TinyStories
# validation text, generate a short story, quantize it to a GGUF.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
S=../shared
M=$S/models/stories260K/stories260K-f32.gguf
echo; echo "== lowbit inspect $M"
build/lowbit inspect "$M"
echo; echo "== lowbit estimate $M --ctx 512"
build/lowbit estimate "$M" --ctx 512 | tail -3
echo; echo "== lowbit ppl (llama.cpp protocol, ctx 128)"
build/lowbit ppl "$M" -f $S/text/tinystories_val.txt -c 128 --chunks 100
echo; echo "== lowbit generate (greedy, from BOS)"
build/lowbit generate "$M" -n 120 --temp 0
echo; echo "== lowbit generate (sampled, --temp 0.8 --top-p 0.9 --seed 42, prompt 'Once upon a time')"
build/lowbit generate $S/models/stories260K/stories260K.bin -p "Once upon a time" -n 120 --temp 0.8 --top-p 0.9 --seed 42
echo; echo "== lowbit quantize to Q8_0 (a GGUF that llama.cpp runs)"
out=$(mktemp -d)/stories260K-Q8_0.gguf
build/lowbit quantize "$M" -o "$out" --type Q8_0 2>&1 | tail -3
