"""elmlab against a peer, side by side: rounds that run `elmlab bench` and the peer
(bench/elm_jax.py for the ELM Network, bench/lstm_torch.py for the LSTM) one after the
other on the same cores, and the median of each side with the ratios.

    python3 bench/peer.py --peer jax --task shd_adding [--batch 8] [--threads 2] [--rounds 3] [--steps 3]
    python3 bench/peer.py --peer torch [--rounds 5] [--steps 10]

elmlab is target/release/elmlab (cargo build --release) unless ELMLAB is set.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = {"shd_adding": "configs/shd_adding/elm.ron", "enwik8": "configs/enwik8/elm.ron", "lstm": "configs/bench/lstm_b32_i64_h256.ron"}


def run_json(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    text = out.stdout
    return json.loads(text[text.index("{"):])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", choices=["jax", "torch"], default="jax")
    p.add_argument("--task", choices=["shd_adding", "enwik8"], default="shd_adding")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    elmlab = os.environ.get("ELMLAB", os.path.join(ROOT, "target", "release", "elmlab"))
    if a.peer == "jax":
        ours = [elmlab, "bench", CONFIGS[a.task], f"train.batch={a.batch}", "--steps", str(a.steps), "--threads", str(a.threads), "--json"]
        theirs = [sys.executable, os.path.join(HERE, "elm_jax.py"), "--task", a.task, "--batch", str(a.batch), "--steps", str(a.steps), "--threads", str(a.threads), "--json"]
    else:
        ours = [elmlab, "bench", CONFIGS["lstm"], "--steps", str(a.steps), "--threads", str(a.threads), "--json"]
        theirs = [sys.executable, os.path.join(HERE, "lstm_torch.py"), "--steps", str(a.steps), "--threads", str(a.threads), "--json"]
    rows = {"elmlab": [], a.peer: []}
    for r in range(a.rounds):
        for name, cmd in (("elmlab", ours), (a.peer, theirs)):
            res = run_json(cmd)
            rows[name].append(res)
            print(f"round {r + 1}: {name:<7} training step {res['train_step_s']:.4f} s, inference {res['infer_batch_s']:.4f} s", file=sys.stderr)
    med = {n: {k: statistics.median(x[k] for x in v) for k in ("train_step_s", "infer_batch_s", "peak_memory_bytes")} for n, v in rows.items()}
    params = {n: v[0].get("params") for n, v in rows.items()}
    what = a.task if a.peer == "jax" else "lstm B32 I64 H256 T100"
    print(f"{what}, batch {a.batch if a.peer == 'jax' else 32}, {a.threads} threads, medians of {a.rounds} rounds × {a.steps} steps (parameters: elmlab {params['elmlab']}, {a.peer} {params[a.peer]})")
    for k, label in (("train_step_s", "training step"), ("infer_batch_s", "inference batch")):
        e, q = med["elmlab"][k], med[a.peer][k]
        print(f"  {label:<16} elmlab {e:.4f} s   {a.peer} {q:.4f} s   {a.peer}/elmlab = {q / e:.2f}x")
    print(f"  peak memory      elmlab {med['elmlab']['peak_memory_bytes'] / 2**20:.0f} MiB   {a.peer} {med[a.peer]['peak_memory_bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
