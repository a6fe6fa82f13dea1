#!/usr/bin/env bash
# Checks a CUDA build of elmlab on a GPU machine against a CPU build, from the same seeds:
#   1. trains STEPS steps (default 20) of each model (ELM, LSTM, GRU, linear on
#      SHD-Adding; ELM and LSTM on Enwik8) with both binaries and compares the
#      per-step training losses of metrics.jsonl (target: within 1e-4 relative);
#   2. times the SHD-Adding and Enwik8 default training steps (the configs' own
#      recipes; data: the synthetic twins) and prints a table: steps/s on the GPU, on
#      CPU_CORES cores, the speed-up, and the GPU memory the run used (nvidia-smi);
#   3. `elmlab bench` of the ELM defaults at batch 8 and 64: the fused CUDA layers, the
#      op-by-op reference on the GPU, the CPU fused layer on CPU_CORES cores (seconds per
#      training step and inference batch, GFLOP/s, GPU memory), and the time per step in
#      each fused kernel (ELMLAB_CUDA_TIMING);
#   4. the JAX peer (bench/elm_jax.py) on the same GPU, where python3 has JAX.
# Sections 0 (the fused CUDA ELM on the quick config against the CPU) and 3 come first:
# they are what a short lease must not miss. A failed run is reported and the script
# goes on. Exit code 1 when a loss differs by more than TOLERANCE or a run failed.
#
# Usage: scripts/gpu-check.sh CUDA_BINARY CPU_BINARY [WORK_DIR]
#   CUDA_BINARY from scripts/build-cuda.sh (target/cuda/release/elmlab), CPU_BINARY from
#   `cargo build --release` (target/release/elmlab). Run from the repository root (the
#   configs are read from configs/). Needs python3; finds libcublas.so.13 and
#   libnvrtc.so.13 in python3's site-packages (PyTorch's CUDA 13 wheels) unless the
#   loader already can.
# Settings (environment): STEPS=20, BENCH_STEPS=5 (GPU bench), CPU_BENCH_STEPS=2,
#   LOSS_MODELS (names from the list below to compare, default all), SKIP_TIMING=1 (no
#   section 2), SKIP_NSYS=1 (no launch count), JAX_BATCHES="8 64", GPU_TIMEOUT=300 (seconds for any one GPU run: a hung
#   kernel must not take the whole lease), TIME_STEPS=40 (GPU timing runs; the rate is taken
#   between a run of TIME_STEPS/4 and one of TIME_STEPS steps, so start-up is not
#   counted), CPU_TIME_STEPS=5, CPU_CORES=2 (taskset; our development machines' count),
#   TOLERANCE=1e-4, GPU_DEVICE=cuda:0. For a dry run of the script's logic without a
#   GPU, pass a CPU binary twice with GPU_DEVICE=cpu.
# The CPU half is slow (an SHD-Adding ELM step took 6 s, an Enwik8 ELM step 16 s on our
#   two cores): run it beforehand on a CPU machine with CPU_ONLY=1 (same WORK_DIR, same
#   settings) and carry WORK_DIR along; CPU runs already finished there are not redone.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
gpu_bin=$(realpath "$1")
cpu_bin=$(realpath "$2")
work=$(realpath -m "${3:-gpu-check}")
steps=${STEPS:-20}
time_steps=${TIME_STEPS:-40}
cpu_time_steps=${CPU_TIME_STEPS:-5}
cpu_cores=${CPU_CORES:-2}
tolerance=${TOLERANCE:-1e-4}
gpu_device=${GPU_DEVICE:-cuda:0}
gpu_timeout=${GPU_TIMEOUT:-300}
for b in "$gpu_bin" "$cpu_bin"; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
[ -d configs/shd_adding ] || { echo "run from the elmlab repository root (configs/ is read)" >&2; exit 2; }
mkdir -p "$work"

# The CUDA libraries the binary links (libcuda.so.1 comes with the driver).
if [ "$gpu_device" != cpu ] && [ -z "${CPU_ONLY:-}" ]; then
    for lib in libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13; do
        if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
            dir=$(python3 - "$lib" <<'EOF'
import site, sys, pathlib
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for hit in sorted(pathlib.Path(root).glob("nvidia/**/" + sys.argv[1])):
        print(hit.parent); sys.exit()
EOF
            )
            [ -n "$dir" ] || { echo "cannot find $lib (install PyTorch's CUDA 13 wheels, or set LD_LIBRARY_PATH)" >&2; exit 2; }
            case ":${LD_LIBRARY_PATH:-}:" in
                *":$dir:"*) ;;
                *) export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
            esac
        fi
    done
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    ldd "$gpu_bin" | grep -E 'libcuda|libcublas|libnvrtc' || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi

shd_data=(task.data_dir="$work/data/shd" task.synthetic=true)
text_data=(task.path="$work/data/enwik8-synthetic" task.synthetic=true)
# Small evaluations: this script is about training steps.
shd_eval=(task.valid_batches=1 task.test_batches=1)
text_eval=(task.eval_bytes=2000)
# name  config  extra overrides
models=(
    "shd-elm     configs/shd_adding/elm.ron"
    "shd-elm-ref configs/shd_adding/elm.ron model.neuron.path=reference"
    "shd-lstm    configs/shd_adding/lstm.ron"
    "shd-gru     configs/shd_adding/lstm.ron model.neuron.kind=gru"
    "shd-linear  configs/shd_adding/linear.ron"
    "enwik8-elm  configs/enwik8/elm.ron"
    "enwik8-lstm configs/enwik8/lstm.ron"
)

# train BINARY DEVICE OUT_DIR STEPS CONFIG [OVERRIDES...]
train() {
    local bin=$1 device=$2 out=$3 n=$4 config=$5
    shift 5
    if [ "$device" = cpu ] && [ -f "$out/summary.json" ] && grep -q "\"steps\": $n," "$out/summary.json"; then
        return 0  # finished before (CPU_ONLY=1 on another machine)
    fi
    if [ "$device" != cpu ] && [ -n "${CPU_ONLY:-}" ]; then
        return 0
    fi
    local data=("${shd_data[@]}" "${shd_eval[@]}")
    case "$config" in configs/enwik8/*) data=("${text_data[@]}" "${text_eval[@]}") ;; esac
    rm -rf "$out"
    mkdir -p "$(dirname "$out")"
    local pin=()
    if [ "$bin" = "$cpu_bin" ] && [ "$device" = cpu ] && command -v taskset >/dev/null; then
        pin=(taskset -c "0-$((cpu_cores - 1))")
    elif [ "$device" != cpu ]; then
        pin=(timeout "$gpu_timeout")
    fi
    "${pin[@]}" "$bin" train "$config" "${data[@]}" "$@" \
        train.steps="$n" train.log_every=1 train.eval_every="$n" train.checkpoint_every="$n" \
        --device "$device" --out "$out" >"$out.log" 2>&1 || { echo "FAILED: $bin train $config ($out.log):" >&2; tail -n 20 "$out.log" >&2; return 1; }
}

# compare_losses NAME: the per-step training losses of the cpu and gpu runs of NAME.
compare_losses() {
    python3 - "$1" "$work/losses/$1-cpu/metrics.jsonl" "$work/losses/$1-gpu/metrics.jsonl" "$tolerance" <<'EOF'
import json, sys
name, cpu_path, gpu_path, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def losses(path):
    return [json.loads(l)["loss"] for l in open(path) if '"split":"train"' in l.replace(" ", "")]
cpu, gpu = losses(cpu_path), losses(gpu_path)
if len(cpu) != len(gpu) or not cpu:
    print(f"{name:<12} FAIL: {len(cpu)} cpu vs {len(gpu)} gpu loss lines"); sys.exit(1)
rel = [abs(g - c) / max(abs(c), 1e-12) for c, g in zip(cpu, gpu)]
worst = max(range(len(rel)), key=rel.__getitem__)
verdict = "ok" if rel[worst] <= tol else "FAIL"
print(f"{name:<12} {verdict:<4} steps {len(cpu)}  max rel diff {rel[worst]:.2e} at step {worst + 1} "
      f"(cpu {cpu[worst]:.6f}, gpu {gpu[worst]:.6f}); last loss cpu {cpu[-1]:.6f} gpu {gpu[-1]:.6f}")
sys.exit(0 if verdict == "ok" else 1)
EOF
}

bench_steps=${BENCH_STEPS:-5}
cpu_bench_steps=${CPU_BENCH_STEPS:-2}
# bench_table: section 3 (see the header).
bench_table() {
    echo
    echo "== 3. ELM defaults, elmlab bench: fused CUDA vs reference CUDA vs CPU fused ($cpu_cores cores)"
    mkdir -p "$work/bench"
    local entry name config b
    for entry in "shd configs/shd_adding/elm.ron 8" "enwik8 configs/enwik8/elm.ron 8" "shd configs/shd_adding/elm.ron 64" "enwik8 configs/enwik8/elm.ron 64"; do
        read -r name config b <<<"$entry"
        local cpu_json="$work/bench/$name-b$b-cpu.json" gpu_json="$work/bench/$name-b$b-gpu.json"
        if [ ! -s "$cpu_json" ]; then
            local pin=()
            command -v taskset >/dev/null && pin=(taskset -c "0-$((cpu_cores - 1))")
            "${pin[@]}" "$cpu_bin" bench "$config" train.batch="$b" --steps "$cpu_bench_steps" --threads "$cpu_cores" --json >"$cpu_json" 2>"$cpu_json.log" || { echo "FAILED: cpu bench $name b$b" >&2; tail -n 5 "$cpu_json.log" >&2; rm -f "$cpu_json"; }
        fi
        [ -z "${CPU_ONLY:-}" ] || continue
        timeout "$gpu_timeout" "$gpu_bin" bench "$config" device="$gpu_device" train.batch="$b" --compare --steps "$bench_steps" --json >"$gpu_json" 2>"$gpu_json.log" || { echo "FAILED: gpu bench $name b$b" >&2; tail -n 8 "$gpu_json.log" >&2; status=1; continue; }
        ELMLAB_CUDA_TIMING=1 timeout "$gpu_timeout" "$gpu_bin" bench "$config" device="$gpu_device" train.batch="$b" model.neuron.path=fused --steps 3 --json >"$work/bench/$name-b$b-kernels.json" 2>/dev/null || true
        python3 - "$name" "$b" "$gpu_json" "$cpu_json" "$work/bench/$name-b$b-kernels.json" <<'PY' || status=1
import json, os, sys
name, b, gpu_path, cpu_path, kern_path = sys.argv[1:6]
g = json.load(open(gpu_path))
f, r = g["fused"], g["reference"]
c = json.load(open(cpu_path)) if os.path.exists(cpu_path) else None
mib = lambda x: f"{x / 2**20:.0f} MiB" if x else "-"
print(f"{name} batch {b}: training step  fused CUDA {f['train_step_s'] * 1e3:9.2f} ms ({f['train_gflops']:.1f} GFLOP/s) | reference CUDA {r['train_step_s'] * 1e3:9.2f} ms"
      + (f" | CPU fused {c['train_step_s'] * 1e3:9.2f} ms" if c else "") + f" | fused vs reference {r['train_step_s'] / f['train_step_s']:.1f}x"
      + (f", vs CPU {c['train_step_s'] / f['train_step_s']:.1f}x" if c else ""))
print(f"{name} batch {b}: inference      fused CUDA {f['infer_batch_s'] * 1e3:9.2f} ms ({f['infer_gflops']:.1f} GFLOP/s) | reference CUDA {r['infer_batch_s'] * 1e3:9.2f} ms"
      + (f" | CPU fused {c['infer_batch_s'] * 1e3:9.2f} ms" if c else ""))
print(f"{name} batch {b}: GPU memory in use at most: fused {mib(f.get('peak_device_memory_bytes'))}, reference {mib(r.get('peak_device_memory_bytes'))}")
try:
    k = json.load(open(kern_path))
    parts = ", ".join(f"{n} {s * 1e3:.2f} ms" for n, s in k.get("kernel_s_per_step", []))
    print(f"{name} batch {b}: per training step (each launch waited for): {parts}; whole step then {k['train_step_s'] * 1e3:.2f} ms")
except Exception as e:
    print(f"{name} batch {b}: no kernel timings ({e})")
PY
    done
}

# jax_peer: section 4 (see the header).
jax_peer() {
    [ -z "${CPU_ONLY:-}" ] || return 0
    echo
    echo "== 4. the JAX peer (bench/elm_jax.py) on this machine's default JAX backend"
    python3 -c 'import jax' 2>/dev/null || { echo "(no JAX in python3)"; return 0; }
    local task b
    for task in shd_adding enwik8; do
        for b in ${JAX_BATCHES:-8 64}; do
            timeout "$gpu_timeout" python3 bench/elm_jax.py --task "$task" --batch "$b" --threads 8 --steps 5 2>&1 | tail -n 1 || echo "JAX peer $task b$b failed"
        done
    done
}

# The synthetic data, written once by the CPU build so both read the same files.
[ -f "$work/data/shd/shd_test.h5" ] || "$cpu_bin" data synth-shd --out "$work/data/shd" >/dev/null

status=0
echo
echo "== 0. the quick ELM config (fused CUDA layers vs the CPU fused layer), $steps steps"
train "$cpu_bin" cpu "$work/losses/quick-elm-cpu" "$steps" configs/shd_adding/quick_elm.ron || status=1
if [ -z "${CPU_ONLY:-}" ]; then
    train "$gpu_bin" "$gpu_device" "$work/losses/quick-elm-gpu" "$steps" configs/shd_adding/quick_elm.ron && compare_losses quick-elm || status=1
fi
bench_table

echo
echo "== 1. losses over $steps steps, $gpu_device vs cpu (same seed)"
for entry in "${models[@]}"; do
    read -r name config extra <<<"$entry"
    case " ${LOSS_MODELS:-$name} " in *" $name "*) ;; *) continue ;; esac
    train "$cpu_bin" cpu "$work/losses/$name-cpu" "$steps" "$config" $extra || { status=1; continue; }
    train "$gpu_bin" "$gpu_device" "$work/losses/$name-gpu" "$steps" "$config" $extra || { status=1; continue; }
    [ -z "${CPU_ONLY:-}" ] || continue
    compare_losses "$name" || status=1
done

echo
echo "== 2. default training steps (SHD-Adding and Enwik8 recipes, synthetic data)"
# peak_memory_mib COMMAND...: runs it while sampling the GPU's used memory; prints the
# peak above what was in use before, in MiB ("-" without nvidia-smi).
sample_memory() {
    if [ "$gpu_device" = cpu ] || ! command -v nvidia-smi >/dev/null; then
        "$@"; echo "-" >"$work/peak"; return
    fi
    local index=${gpu_device#cuda:}
    local before
    before=$(nvidia-smi -i "$index" --query-gpu=memory.used --format=csv,noheader,nounits)
    nvidia-smi -i "$index" --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$work/memory.log" &
    local sampler=$!
    "$@"
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    sort -n "$work/memory.log" | tail -n 1 | awk -v b="$before" '{ print $1 - b }' >"$work/peak"
}
wall() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wall_time_s"])' "$1/summary.json"; }
[ -z "${SKIP_TIMING:-}" ] && printf '%-12s %14s %14s %9s %12s\n' model "gpu steps/s" "cpu steps/s" speed-up "gpu MiB"
[ -n "${SKIP_TIMING:-}" ] || for entry in "shd-elm configs/shd_adding/elm.ron" "shd-lstm configs/shd_adding/lstm.ron" \
             "enwik8-elm configs/enwik8/elm.ron" "enwik8-lstm configs/enwik8/lstm.ron"; do
    read -r name config <<<"$entry"
    short=$((time_steps / 4))
    train "$cpu_bin" cpu "$work/timing/$name-cpu" "$cpu_time_steps" "$config" || { status=1; continue; }
    cpu_rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps_per_s"])' "$work/timing/$name-cpu/summary.json")
    if [ -n "${CPU_ONLY:-}" ]; then
        printf '%-12s %14s %14.3f\n' "$name" - "$cpu_rate"
        continue
    fi
    train "$gpu_bin" "$gpu_device" "$work/timing/$name-gpu-short" "$short" "$config" || { status=1; continue; }
    sample_memory train "$gpu_bin" "$gpu_device" "$work/timing/$name-gpu" "$time_steps" "$config" || { status=1; continue; }
    gpu_rate=$(python3 -c "print(($time_steps - $short) / ($(wall "$work/timing/$name-gpu") - $(wall "$work/timing/$name-gpu-short")))")
    python3 -c "import sys; g, c = float(sys.argv[1]), float(sys.argv[2]); print(f'{sys.argv[3]:<12} {g:14.3f} {c:14.3f} {g / c:8.1f}x {sys.argv[4]:>12}')" \
        "$gpu_rate" "$cpu_rate" "$name" "$(cat "$work/peak")"
done
echo "(gpu: $gpu_device, rate between a $((time_steps / 4))-step and a $time_steps-step run; cpu: $cpu_cores cores, $cpu_time_steps steps incl. start-up)"

jax_peer

# How many kernels one training step launches (launch-bound or not), when nsys is there.
if [ "$gpu_device" != cpu ] && [ -z "${SKIP_NSYS:-}" ] && command -v nsys >/dev/null; then
    echo
    echo "== 3. kernel launches per SHD-Adding ELM step (nsys, 3 steps)"
    nsys profile --force-overwrite true --stats=false -o "$work/shd-elm" \
        "$gpu_bin" train configs/shd_adding/elm.ron "${shd_data[@]}" "${shd_eval[@]}" train.steps=3 train.eval_every=3 \
        --device "$gpu_device" --out "$work/timing/nsys-run" >/dev/null 2>&1 || true
    nsys stats --report cuda_gpu_kern_sum --format csv "$work/shd-elm.nsys-rep" 2>/dev/null |
        python3 -c 'import csv,sys; rows=[r for r in csv.DictReader(l for l in sys.stdin if "," in l)]; n=sum(int(r.get("Instances",0) or 0) for r in rows); print(f"{n} kernel launches in 3 steps (+ start-up and one evaluation): about {n // 3} per step")' || true
fi
exit "$status"
