#!/usr/bin/env bash
# Builds the CUDA elmlab binary (cargo feature `cuda`) on a machine WITHOUT a GPU, CUDA
# toolkit or driver, by the recipe in the project's spec (cuda-build.md):
#   1. nvcc from the pinned CUDA 13.0 Python wheels, in a virtualenv (a newer nvcc emits
#      PTX that a 13.0 driver refuses);
#   2. an `nvidia-smi` stand-in, because dfdx's build script asks it for the compute
#      capability before it reads CUDA_COMPUTE_CAP;
#   3. link stubs for libcuda / libcublas / libnvrtc (every function named in cudarc's
#      bindings, each returning an error code) with the real sonames, so the binary
#      imports exactly what one linked against the real libraries would.
# Output: target/cuda/release/elmlab, which needs libcuda.so.1 (the NVIDIA driver) and
# libcublas.so.13 / libnvrtc.so.13 at start: run it with LD_LIBRARY_PATH naming their
# folders (see README, "GPUs").
#
# Usage: scripts/build-cuda.sh            (CUDA_COMPUTE_CAP=90, an H100/H200, by default)
#        CUDA_COMPUTE_CAP=80 scripts/build-cuda.sh   (A100)
#        scripts/build-cuda.sh --check-kernels
#          only compiles the fused layers' kernels (neurons/cuda/kernels/*.cu) through
#          ptxas for sm_80 and sm_90 and prints each kernel's registers, spills and shared
#          memory; fails on a compile error or a kernel whose launch block (64 threads,
#          neurons/cuda/src/gpu.rs) would not fit an SM. CI runs this (no GPU needed).
# Needs: cargo, python3 with venv, gcc, and PyPI (about 100 MB of wheels, once).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work="$repo/target/cuda-toolchain"
mkdir -p "$work"

compute_cap=${CUDA_COMPUTE_CAP:-90}
case "$compute_cap" in
    ''|*[!0-9]*) echo "CUDA_COMPUTE_CAP must be digits like 90 (sm_90), got '$compute_cap'" >&2; exit 2 ;;
esac

# 1. The CUDA 13.0 toolkit pieces dfdx's build needs (nvcc, its NVVM, headers).
venv="$work/venv"
wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
        nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip show "${wheels[@]%%==*}" >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet --no-deps "${wheels[@]}"
fi
cuda_root=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
if [ ! -f "$cuda_root/include/cuda.h" ] || [ ! -x "$cuda_root/bin/nvcc" ]; then
    echo "the CUDA wheels did not give $cuda_root/include/cuda.h and bin/nvcc" >&2
    exit 1
fi

if [ "${1:-}" = "--check-kernels" ]; then
    block=64  # threads per block, as BLOCK in neurons/cuda/src/gpu.rs
    status=0
    for cap in 80 90; do
        log="$work/ptxas-sm_$cap.log"
        : >"$log"
        for source in neurons/cuda/kernels/*.cu; do
            if ! "$cuda_root/bin/nvcc" --cubin -O3 -arch=sm_$cap -Xptxas -v -o "$work/$(basename "$source" .cu)-sm_$cap.cubin" "$source" >>"$log" 2>&1; then
                echo "sm_$cap: $source does not compile:" >&2; cat "$log" >&2; exit 1
            fi
        done
        # ptxas prints, per kernel: "Function properties for NAME", then its spills, then
        # "Used N registers, ... N bytes smem"
        python3 - "$cap" "$block" "$log" <<'PY' || status=1
import re, sys
cap, block, text = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
ok, name, spill = True, None, ""
for line in text.splitlines():
    m = re.search(r"Function properties for (\w+)", line)
    if m:
        name = m.group(1); continue
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m:
        spill = f"spills {m.group(1)}/{m.group(2)} B"; continue
    m = re.search(r"Used (\d+) registers", line)
    if m and name:
        regs = int(m.group(1))
        smem = re.search(r"(\d+) bytes smem", line)
        smem = int(smem.group(1)) if smem else 0
        fits = regs * block <= 65536 and regs <= 255 and smem <= 227 * 1024
        ok &= fits
        print(f"sm_{cap} {name:<14} {regs:>3} registers, {smem:>6} B shared, {spill or 'no spills'}: {'fits' if fits else 'DOES NOT FIT'} a {block}-thread block")
        name, spill = None, ""
sys.exit(0 if ok else 1)
PY
    done
    exit $status
fi

# 2. The nvidia-smi stand-in: dfdx's build script runs
#    `nvidia-smi --query-gpu=compute_cap --format=csv` and parses its second line.
fake_bin="$work/bin"
mkdir -p "$fake_bin"
cat >"$fake_bin/nvidia-smi" <<EOF
#!/bin/sh
# Stand-in for the build only (scripts/build-cuda.sh): the compute capability to target.
echo compute_cap
echo $((compute_cap / 10)).$((compute_cap % 10))
EOF
chmod +x "$fake_bin/nvidia-smi"

# 3. Link stubs, generated from the function names in cudarc's bindings.
cudarc_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.9.15 2>/dev/null | head -n1)
if [ -z "$cudarc_src" ]; then
    cargo fetch --locked
    cudarc_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.9.15 | head -n1)
fi
stubs="$work/stubs"
rm -rf "$stubs"
mkdir -p "$stubs"
# stub LIBRARY-NAME SONAME BINDINGS [VERSION-NODE]
stub() {
    local name=$1 soname=$2 bindings=$3 version=${4:-}
    local source="$stubs/$name.c"
    {
        echo "/* Link stub generated by scripts/build-cuda.sh; never loaded at run time. */"
        grep -oE 'pub fn [A-Za-z_][A-Za-z0-9_]*\(' "$bindings" | sed -E 's/pub fn (.*)\(/\1/' | sort -u |
            while read -r fn; do echo "int $fn(void) { return 1; }"; done
    } >"$source"
    local flags=(-shared -fPIC -o "$stubs/$soname" "-Wl,-soname,$soname")
    if [ -n "$version" ]; then
        printf '%s { global: *; };\n' "$version" >"$stubs/$name.map"
        flags+=("-Wl,--version-script=$stubs/$name.map")
    fi
    gcc "${flags[@]}" "$source"
    ln -sf "$soname" "$stubs/lib$name.so"
}
stub cuda libcuda.so.1 "$cudarc_src/src/driver/sys.rs"
stub cublas libcublas.so.13 "$cudarc_src/src/cublas/sys.rs" libcublas.so.13
stub cublasLt libcublasLt.so.13 "$cudarc_src/src/cublaslt/sys.rs" libcublasLt.so.13
stub nvrtc libnvrtc.so.13 "$cudarc_src/src/nvrtc/sys.rs" libnvrtc.so.13

# 4. The build, in its own target folder so the CPU build's stays as it is.
started=$(date +%s)
PATH="$fake_bin:$cuda_root/bin:$PATH" \
CUDA_ROOT="$cuda_root" \
CUDA_COMPUTE_CAP="$compute_cap" \
RUSTFLAGS="${RUSTFLAGS:-} -L native=$stubs" \
CARGO_TARGET_DIR="$repo/target/cuda" \
    cargo build --release --locked --features cuda --bin elmlab
binary="$repo/target/cuda/release/elmlab"
echo "built $binary ($(du -h "$binary" | cut -f1), $(( $(date +%s) - started )) s, sm_$compute_cap)"
echo "shared libraries it needs at start:"
readelf -d "$binary" | grep NEEDED
