#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp) with clang into build-fuzz/
# and runs each one for SECONDS seconds on a seed corpus made from
# fuzz/corpus/<target>/ (small synthetic files + saved crash reproducers) and
# the real files in ../shared. Exits non-zero when any target finds a crash,
# a sanitizer report, a leak, a timeout or an out-of-memory; the input is saved
# as build-fuzz/artifacts/<target>-crash-* (see fuzz/README.md to reproduce).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default 15 s; default all targets)
#   env LOWBIT_SHARED_DIR   the shared inputs (default: ../shared beside the repo)
#   env LOWBIT_BUILD_JOBS   parallel compile jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-15}
shift || true
shared=${LOWBIT_SHARED_DIR:-$root/../shared}
build="build-fuzz"
jobs=${LOWBIT_BUILD_JOBS:-$(nproc)}

# ---- clang + libFuzzer (Debian: clang + libclang-rt-14-dev, installed by scripts/setup.sh)
have_libfuzzer() {
  command -v clang >/dev/null && command -v clang++ >/dev/null || return 1
  local probe
  probe=$(mktemp -d)
  printf '%s\n' '#include <cstdint>' '#include <cstddef>' \
    'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
if ! have_libfuzzer; then
  echo "fuzz: clang with libFuzzer not found; running scripts/setup.sh"
  bash scripts/setup.sh
  have_libfuzzer || { echo "fuzz: clang++ -fsanitize=fuzzer still does not link (need clang + libclang-rt-14-dev)" >&2; exit 1; }
fi

# ---- build (the whole library instrumented: see the LOWBIT_FUZZ block of CMakeLists.txt)
echo "== fuzz: configure + build $build (clang, ASan + UBSan + libFuzzer)"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOWBIT_FUZZ=ON -DLOWBIT_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

# ---- seed corpora, in a temp dir (new inputs the fuzzers find are thrown away with it)
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

# Little-endian unsigned integer of N bytes at OFFSET of FILE.
le_uint() { od -An -t"u$3" -j"$2" -N"$3" "$1" | tr -d ' \n'; }

seed_from_shared() {  # TARGET DIR: the real files in ../shared that seed TARGET
  local name=$1 dir=$2
  [ -d "$shared" ] || return 0
  case "$name" in
    safetensors)  # the header of the real model (its offsets point past this prefix: a refused-but-rich seed)
      local f="$shared/models/stories260K-hf/model.safetensors"
      if [ -f "$f" ]; then
        local n
        n=$(le_uint "$f" 0 8)
        head -c $((8 + n)) "$f" >"$dir/stories260K-header.safetensors"
      fi ;;
    gguf) cp "$shared/models/stories260K/stories260K-f32.gguf" "$dir/" 2>/dev/null || true ;;
    llama2c) cp "$shared/models/stories260K/stories260K.bin" "$dir/" 2>/dev/null || true ;;
    llama2c_vocab)  # byte 0 = n_vocab - 1: the first 256 pieces of tok512.bin
      local f="$shared/models/stories260K/tok512.bin"
      if [ -f "$f" ]; then
        local off=4 i len
        for ((i = 0; i < 256; i++)); do
          len=$(le_uint "$f" $((off + 4)) 4)
          off=$((off + 8 + len))
        done
        { printf '\377'; head -c "$off" "$f"; } >"$dir/tok512-first256.bin"
      fi ;;
    hf_config) cp "$shared/models/stories260K-hf/config.json" "$dir/stories260K-config.json" 2>/dev/null || true ;;
    tokenize)
      [ -f "$shared/text/tinystories_val.txt" ] && head -c 1000 "$shared/text/tinystories_val.txt" >"$dir/tinystories.txt"
      [ -f "$shared/text/wiki.test.raw" ] && head -c 1000 "$shared/text/wiki.test.raw" >"$dir/wiki.txt"
      [ -f "$shared/text/c4_sample.jsonl" ] && head -n 3 "$shared/text/c4_sample.jsonl" | tail -n 1 | head -c 1000 >"$dir/c4.txt"
      true ;;
    sentencepiece_model) cp "$shared/tokenizers/llama2/tokenizer.model" "$dir/" 2>/dev/null || true ;;
  esac
}

# Regression inputs made here rather than kept in git: too big (deep JSON
# nesting: a recursive nlohmann::json::dump() in an error message overflowed
# the stack), or a one-field variant of a seed. Each is replayed once, before
# fuzzing, without raising the fuzzer's -max_len.
deep_json() { printf '%*s' "$1" '' | tr ' ' '['; printf '%*s' "$1" '' | tr ' ' ']'; }
le64() {
  local n=$1 i
  for ((i = 0; i < 8; i++)); do printf "\\$(printf '%03o' $(((n >> (8 * i)) & 255)))"; done
}
regressions_for() {  # TARGET DIR
  case "$1" in
    safetensors)
      local h
      h="{\"a\":{\"dtype\":$(deep_json 200000),\"shape\":[],\"data_offsets\":[0,0]}}"
      { le64 "${#h}"; printf '%s' "$h"; } >"$2/deep-json-dtype.safetensors" ;;
    hf_config)
      printf '{"architectures":["LlamaForCausalLM"],"vocab_size":%s}' "$(deep_json 200000)" >"$2/deep-json-vocab-size.json" ;;
    gguf)  # tiny-llama.gguf with tokenizer.ggml.unknown_token_id = 0xFFFFFFFF ("none"): SPM encode gave id -1
      local seed=fuzz/corpus/gguf/tiny-llama.gguf key=tokenizer.ggml.unknown_token_id at
      at=$(grep -obUa "$key" "$seed" | head -n 1 | cut -d: -f1)
      if [ -n "$at" ]; then
        cp "$seed" "$2/spm-unk-none.gguf"
        printf '\377\377\377\377' | dd of="$2/spm-unk-none.gguf" bs=1 seek=$((at + ${#key} + 4)) conv=notrunc status=none
      fi ;;
  esac
}

export LOWBIT_SHARED_DIR="$shared"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
printf '%-24s %8s %10s %8s %8s  %s\n' target seconds execs "exec/s" cov result
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  bin="$build/fuzz_$name"
  [ -x "$bin" ] || { echo "fuzz: no fuzzer $bin" >&2; failed+=("$name(missing)"); continue; }
  corpus="$work/corpus/$name"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$name" ]; then cp -r "fuzz/corpus/$name/." "$corpus/"; fi
  seed_from_shared "$name" "$corpus"
  log="$work/$name.log"
  rc=0
  mkdir -p "$work/regress/$name"
  regressions_for "$name" "$work/regress/$name"
  mapfile -t regress < <(find "$work/regress/$name" -type f)
  if [ "${#regress[@]}" -gt 0 ]; then
    "$bin" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$root/$build/artifacts/$name-" "${regress[@]}" \
      >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
      printf '%-24s %8s %10s %8s %8s  %s\n' "$name" - "${#regress[@]}" - - "FAILED (exit $rc) on a regression input"
      failed+=("$name")
      echo "---- $name: last lines of the replay log"
      tail -n 30 "$log" | cut -c1-300
      for f in "${regress[@]}"; do cp "$f" "$build/artifacts/$name-regression-${f##*/}"; done
      echo "---- regression inputs (made by regressions_for in $0), kept as $build/artifacts/$name-regression-*"
      continue
    fi
  fi
  "$bin" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$root/$build/artifacts/$name-" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed+=("$name")
  fi
  printf '%-24s %8s %10s %8s %8s  %s\n' "$name" "$seconds" "${execs:-?}" "${speed:-?}" "${cov:-?}" "$result"
  if [ "$rc" -ne 0 ]; then
    echo "---- $name: last lines of the fuzzer log"
    tail -n 60 "$log"
    echo "---- saved inputs: $(ls "$build/artifacts/$name-"* 2>/dev/null | tr '\n' ' ')"
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: $build/fuzz_NAME $build/artifacts/NAME-crash-...)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a finding"
