#!/usr/bin/env bash
# Sets up a CUDA 13.0 toolkit from PyPI wheels (no system CUDA, no GPU needed) and runs the given
# command with it on PATH, e.g.
#   bash tools/cuda-toolkit.sh cargo build --release --features cuda
# The toolkit goes into a virtualenv at $SLUICE_CUDA_VENV (default target/cuda-toolkit), made once:
# nvcc, headers, cuBLAS, cuRAND and NVRTC from pip. The CUDA driver library (libcuda) comes with
# the NVIDIA driver, not with any wheel, so for linking on a machine without a GPU a stub
# libcuda.so is generated here from the toolkit's own cuda.h (the same thing NVIDIA's
# lib/stubs/libcuda.so is). At run time the driver's real libcuda.so.1 is loaded instead; should
# the stub ever be loaded, every call answers CUDA_ERROR_NO_DEVICE (100) and sluice falls back to
# the CPU.
# CUDA_COMPUTE_CAP picks the GPU architecture of candle's kernels (default 90: H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SLUICE_CUDA_VENV:-$PWD/target/cuda-toolkit}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-cublas~=13.0.0" "nvidia-curand~=10.4.0"
fi
cuda="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
# Unversioned names for the linker, as a system toolkit has them.
for lib in cublas cublasLt curand nvrtc cudart; do
  target="$(ls "$cuda/lib/lib$lib.so."* | head -n 1)"
  ln -sf "$(basename "$target")" "$cuda/lib/lib$lib.so"
done
if [ ! -f "$cuda/lib/stubs/libcuda.so" ]; then
  mkdir -p "$cuda/lib/stubs"
  # Every driver API function cuda.h declares, after its macros map names to versioned symbols.
  gcc -E -I "$cuda/include" "$cuda/include/cuda.h" \
    | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' (' | sort -u \
    | sed 's/.*/int &(void) { return 100; }/' > "$cuda/lib/stubs/libcuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$cuda/lib/stubs/libcuda-stub.c"
fi
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
export LD_LIBRARY_PATH="$cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
exec "$@"
