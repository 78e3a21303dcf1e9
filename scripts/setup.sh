#!/usr/bin/env bash
# Installs every Debian package lowbit needs to build, test and benchmark.
# Safe to re-run: apt-get skips what is already installed.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev            # sgemm for batched prompt processing
  libsentencepiece-dev       # reference SentencePiece tokenizer
  nlohmann-json3-dev         # config.json, safetensors headers, tokenizer.json
  libcli11-dev               # the lowbit CLI
  libfmt-dev                 # formatting
  libpcre2-dev               # Unicode pre-tokenizer regexes (GPT-2 / Llama-3 / Qwen2 BPE)
  libgtest-dev libgmock-dev  # tests
  libbenchmark-dev           # micro-benchmarks
  libsimde-dev               # SIMDe: test_avx512_emulated runs the AVX-512 kernels in software
  clang libclang-rt-14-dev libomp-dev  # libFuzzer targets (clang + its OpenMP)
  librsvg2-bin               # rsvg-convert: test_report_render renders pareto.svg to PNG
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
