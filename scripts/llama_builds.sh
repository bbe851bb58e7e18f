#!/usr/bin/env bash
# Builds llama-cpp-python 0.3.36 (llama.cpp from source, ~9 min each on 2 cores) for a pinned
# x86 instruction set, so a fixture recorded on one machine can be recorded again on another:
# a default (-march=native) build takes whatever kernels the host offers, and llama.cpp's
# greedy tokens change with them (measured: an AVX2 build and the machine that recorded the
# first fixture disagree on 5 of 12 prompts). On hosts with AMX, the native build's AMX
# kernels also crash inside VMs that do not grant the tile registers.
#
#   scripts/llama_builds.sh            # both: .cache/llama-avx2 and .cache/llama-avx512
#   scripts/llama_builds.sh avx2       # one
set -euo pipefail
cd "$(dirname "$0")/.."
common="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"
declare -A flags=(
  [avx2]="$common -DGGML_AVX512=OFF"
  [avx512]="$common -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"
)
for isa in "${@:-avx2 avx512}"; do
  [ -n "${flags[$isa]:-}" ] || { echo "unknown build '$isa' (avx2, avx512)" >&2; exit 2; }
  venv=".cache/llama-$isa"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    echo "$venv: present"
    continue
  fi
  python3 -m venv "$venv"
  # --no-cache-dir: pip would otherwise reuse a wheel built with other flags.
  CMAKE_ARGS="${flags[$isa]}" nice -n 10 "$venv/bin/pip" install -q --no-cache-dir numpy llama-cpp-python==0.3.36
  "$venv/bin/python" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode())'
done
