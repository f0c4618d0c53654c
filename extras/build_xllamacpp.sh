#!/usr/bin/env bash
# Optional: build xllamacpp (the version requirements.txt pins) from its source distribution for this
# machine's CPU, and install it in place of the prebuilt wheel or in a folder of its own.
#
#   bash extras/build_xllamacpp.sh                      # replaces the installed xllamacpp in this Python
#   bash extras/build_xllamacpp.sh --target DIR         # installs into DIR; run with PYTHONPATH=DIR
#
# Why: the prebuilt wheel is built for any x86-64 CPU with AVX2 (llama.cpp's GGML_NATIVE=OFF), so it uses
# none of the AVX-512 or VNNI units a recent Xeon or Ryzen has. On Linux x86-64 this turns on each of
# llama.cpp's instruction-set options (GGML_AVX512, GGML_AVX512_VNNI, ...) that /proc/cpuinfo lists, all but
# AMX: a GGML_NATIVE=ON (-march=native) build, which includes AMX, crashed on the project's Xeon in its
# first matrix product (ggml_backend_amx_mul_mat, a segmentation fault while the model warmed up; a known
# crash with Q4_K_M models: ggml-org/llama.cpp issue 20824). The result runs only on CPUs with these
# instruction sets (elsewhere it stops with "Illegal instruction"), so build it on the machine that runs the
# server. Elsewhere (macOS, ARM) it builds with GGML_NATIVE=ON. llama.cpp's
# run-time choice of a CPU variant (GGML_CPU_ALL_VARIANTS) needs shared ggml libraries, and xllamacpp links
# them statically, so it is not offered. What it gained on the project's 2-core Xeon (docs/latency.md, "A
# native llama.cpp build"): uncached prompts read 1.6-1.7 times as fast, generation about 1.1 times as fast
# per CPU second, voice to voice no measurable change; the build took 15 minutes (2 jobs, under load).
#
# Needs: cmake (3.14+), a C/C++ compiler (GCC 12 here), and the package registry (pip fetches the source
# and the build's own tools: setuptools, cython, versioneer). Not needed: Rust, git, OpenSSL (the build
# leaves out llguidance's grammars and HTTPS in llama.cpp's HTTP client, which the server uses neither of).
# Undo: pip install --force-reinstall --no-deps xllamacpp==2026.10.11549
# The server logs the build it runs at start-up ("llm llamacpp build: ... AVX512 = 1 | ...").
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^xllamacpp==\([^ ]*\).*/\1/p' requirements.txt)
target=""
if [[ "${1:-}" == "--target" ]]; then
  target=${2:?"--target needs a folder"}
elif [[ -n "${1:-}" ]]; then
  echo "usage: bash extras/build_xllamacpp.sh [--target DIR]" >&2
  exit 2
fi
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "build_xllamacpp: $tool is missing (apt-get install cmake g++)" >&2; exit 1; }
done

# The CPU's instruction sets as llama.cpp's CMake options (/proc/cpuinfo flag -> option), AMX left off.
cpu_args="-DGGML_NATIVE=ON"
if [[ "$(uname -m)" == "x86_64" && -r /proc/cpuinfo ]]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  cpu_args="-DGGML_NATIVE=OFF"
  for pair in sse4_2:SSE42 avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512bw:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if [[ "$flags" == *" ${pair%%:*} "* ]]; then cpu_args+=" -DGGML_${pair##*:}=ON"; fi
  done
fi
echo "build_xllamacpp: llama.cpp CPU options: $cpu_args"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m pip download --no-deps --no-binary :all: -d "$work" "xllamacpp==$version"
tar xzf "$work/xllamacpp-$version.tar.gz" -C "$work"
started=$(date +%s)
# xllamacpp's scripts/build.py passes CMAKE_ARGS to llama.cpp's CMake after its own, so these win;
# NPROC is its build parallelism (default: every core).
CMAKE_ARGS="$cpu_args -DLLAMA_LLGUIDANCE=OFF -DLLAMA_BUILD_BORINGSSL=OFF -DLLAMA_OPENSSL=OFF" \
  NPROC="${NPROC:-$(python -c 'import os; print(os.cpu_count() or 2)')}" python -m pip wheel --no-deps -w "$work/dist" "$work/xllamacpp-$version"
echo "build_xllamacpp: built in $(( $(date +%s) - started )) s"
if [[ -n "$target" ]]; then
  python -m pip install --no-deps --upgrade --target "$target" "$work"/dist/xllamacpp-*.whl
  echo "build_xllamacpp: installed into $target; run the server with PYTHONPATH=$target"
  PYTHONPATH="$target" python -c "import xllamacpp; print(xllamacpp.get_system_info())"
else
  python -m pip install --no-deps --force-reinstall "$work"/dist/xllamacpp-*.whl
  python -c "import xllamacpp; print(xllamacpp.get_system_info())"
fi
