#!/usr/bin/env bash
# Checks the machine code of the fused CPU kernels (crate elmlab-neurons, release build):
# no function may contain a vector gather or scatter. The compiler emits them where it
# vectorises a loop across strided data (the lanes of fixed-size blocks), and they ran the
# ELM backward 2.5x slower on an AVX-512 CPU (Zen 4) without changing a single number, so
# only the code shows it. Exits non-zero naming each function and its count.
#
#   scripts/check-kernel-codegen.sh            # builds the kernel bench (release) and checks it
#   scripts/check-kernel-codegen.sh BINARY     # checks an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-}
if [[ -z $binary ]]; then
    cargo build --release --locked -q -p elmlab-neurons --example elm_kernel
    binary=target/release/examples/elm_kernel
fi
command -v objdump >/dev/null || { echo "objdump (binutils) is needed: apt-get install binutils" >&2; exit 2; }

report=$(objdump -d --no-show-raw-insn "$binary" | awk '
    /^[0-9a-f]+ <.*>:$/ { name = $2; ours = (name ~ /elmlab_neurons/); if (ours) functions++ }
    ours && /\t(v(p)?gather|v(p)?scatter)/ { count[name]++ }
    END {
        for (f in count) printf "%6d  %s\n", count[f], f
        printf "checked %d functions of elmlab_neurons\n", functions > "/dev/stderr"
    }')
if [[ -n $report ]]; then
    echo "gathers or scatters in the fused kernels' machine code (count, function):" >&2
    echo "$report" | sort -rn >&2
    exit 1
fi
echo "no vector gathers or scatters in the fused kernels"
