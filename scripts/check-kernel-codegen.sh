#!/usr/bin/env bash
# Checks the machine code of the fused CPU kernels (crate elmlab-neurons, release build):
# no function may contain a vector gather or scatter. The compiler emits them where it
# vectorises a loop across strided data (the lanes of fixed-size blocks), and they ran the
# ELM backward 2.5x slower on an AVX-512 CPU (Zen 4) without changing a single number, so
# only the code shows it. Exits non-zero naming each function and its count.
#
# Without an argument it checks two release builds of the kernel bench: the default one,
# and one with `-C target-cpu=native` (target/native/), which compiles even the AVX2
# functions for everything this CPU has (AVX-512 where it is there).
#
#   scripts/check-kernel-codegen.sh            # builds both and checks them
#   scripts/check-kernel-codegen.sh BINARY     # checks an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."
command -v objdump >/dev/null || { echo "objdump (binutils) is needed: apt-get install binutils" >&2; exit 2; }

if [[ $# -eq 0 ]]; then
    cargo build --release --locked -q -p elmlab-neurons --example elm_kernel
    CARGO_TARGET_DIR=target/native RUSTFLAGS="-C target-cpu=native" cargo build --release --locked -q -p elmlab-neurons --example elm_kernel
    status=0
    for binary in target/release/examples/elm_kernel target/native/release/examples/elm_kernel; do
        echo "$binary:"
        "$0" "$binary" || status=1
    done
    exit $status
fi
binary=$1

report=$(objdump -d --no-show-raw-insn "$binary" | awk '
    /^[0-9a-f]+ <.*>:$/ { name = $2; ours = (name ~ /elmlab_neurons/); if (ours) functions++ }
    ours && /\t(v(p)?gather|v(p)?scatter)/ { count[name]++ }
    END {
        for (f in count) printf "%6d  %s\n", count[f], f
        printf "#checked %d\n", functions
    }')
checked=$(grep '^#checked' <<<"$report" | cut -d' ' -f2)
offenders=$(grep -v '^#checked' <<<"$report" || true)
if [[ $checked -eq 0 ]]; then
    echo "no function of elmlab_neurons found in $binary" >&2
    exit 1
fi
if [[ -n $offenders ]]; then
    echo "gathers or scatters in the fused kernels' machine code (count, function; $checked functions checked):" >&2
    sort -rn <<<"$offenders" >&2
    exit 1
fi
echo "no vector gathers or scatters in the fused kernels ($checked functions checked)"
