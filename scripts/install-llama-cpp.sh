#!/usr/bin/env bash
# Builds llama-cpp-python from source with CPU flags read from /proc/cpuinfo.
#
# A default build turns on the ggml AMX kernels, which crash inside llama_decode on
# some server CPUs, and GGML_NATIVE builds for the build machine only. We build
# portable code and enable each x86 extension only where this CPU has it.
# pip's wheel cache ignores CMAKE_ARGS, so we build with --no-cache-dir and keep our
# own wheel cache keyed by version and flags.
#
# LANTHORN_LLAMA_BACKEND=cpu|cuda|auto (default auto: CUDA where nvcc and an NVIDIA GPU are
# found). A CUDA build offloads the layers a model's `n_gpu_layers` asks for to `gpu_id`.
# LANTHORN_CUDA_ARCHITECTURES (default: the GPUs of this machine) and LANTHORN_LLAMA_CMAKE_ARGS
# (extra CMake flags) tune the build.
set -euo pipefail

venv=${1:-.venv}
version=$(sed -n 's/^llama-cpp-python==//p' requirements.txt)
[ -n "$version" ] || { echo "llama-cpp-python is not pinned in requirements.txt" >&2; exit 1; }

flags="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ "$cpu_flags" == *" $1 "* ]]; }
# avx512_vnni and avx_vnni: the int8 dot products of quantized matmuls in one instruction, which
# pays where several sequences decode together (measured below, in the README's Performance).
for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
            avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
  if has "${pair%%:*}"; then flags="$flags -DGGML_${pair##*:}=ON"; else flags="$flags -DGGML_${pair##*:}=OFF"; fi
done

backend=${LANTHORN_LLAMA_BACKEND:-auto}
if [ "$backend" = auto ]; then
  if command -v nvcc >/dev/null && nvidia-smi -L >/dev/null 2>&1; then backend=cuda; else backend=cpu; fi
fi
case "$backend" in
  cpu) ;;
  cuda)
    command -v nvcc >/dev/null || { echo "LANTHORN_LLAMA_BACKEND=cuda needs CUDA's compiler (nvcc) on PATH" >&2; exit 1; }
    flags="$flags -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${LANTHORN_CUDA_ARCHITECTURES:-native}" ;;
  *) echo "LANTHORN_LLAMA_BACKEND=$backend: use cpu, cuda or auto" >&2; exit 1 ;;
esac
[ -z "${LANTHORN_LLAMA_CMAKE_ARGS:-}" ] || flags="$flags $LANTHORN_LLAMA_CMAKE_ARGS"

stamp="$venv/.llama-cpp-python"
wanted="$version $flags"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  exit 0
fi

key=$(printf '%s' "$wanted" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lanthorn/wheels/$key"
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $version ($backend) from source (a few minutes) with: $flags"
  mkdir -p "$cache.tmp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$venv/bin/python" -m pip wheel --no-cache-dir --no-deps -w "$cache.tmp" "llama-cpp-python==$version"
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
"$venv/bin/python" -m pip install -q --no-cache-dir --force-reinstall --no-deps "$cache"/llama_cpp_python-*.whl
"$venv/bin/python" -m pip install -q "llama-cpp-python==$version"   # its pure-Python dependencies
echo "$wanted" > "$stamp"
