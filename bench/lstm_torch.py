"""The PyTorch side of the LSTM speed check (configs/bench/lstm_b32_i64_h256.ron):
torch.nn.LSTM(64, 256) + Linear(256, 64), cross-entropy at every one of 100 steps,
batch 32, Adam; forward + backward + update per training step, on two CPU threads.

    python3 bench/lstm_torch.py [--threads 2] [--steps 20] [--json]

Prints the median seconds per training step and per inference batch (logits and their
loss, as `elmlab bench` times an evaluation batch), and peak memory.
"""
import argparse
import resource
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--input", type=int, default=64)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--length", type=int, default=100)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(0)
lstm = torch.nn.LSTM(args.input, args.hidden)
readout = torch.nn.Linear(args.hidden, args.input)
params = list(lstm.parameters()) + list(readout.parameters())
optimizer = torch.optim.Adam(params, lr=1e-3)
x = torch.rand(args.length, args.batch, args.input)
targets = torch.randint(0, args.input, (args.length * args.batch,))


def train_step():
    optimizer.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    loss = torch.nn.functional.cross_entropy(readout(out).reshape(-1, args.input), targets)
    loss.backward()
    optimizer.step()


def infer():
    # an evaluation batch, as `elmlab bench` times one: logits and their loss
    with torch.no_grad():
        out, _ = lstm(x)
        torch.nn.functional.cross_entropy(readout(out).reshape(-1, args.input), targets)


def median_seconds(fn):
    fn()  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


train = median_seconds(train_step)
inference = median_seconds(infer)
peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
if args.json:
    import json

    params_count = sum(p.numel() for p in params)
    print(json.dumps({"peer": "torch", "torch": torch.__version__, "params": params_count, "train_step_s": train, "infer_batch_s": inference,
                      "peak_memory_bytes": int(peak_gib * 2**30)}))
    raise SystemExit(0)
print(f"torch {torch.__version__}, {args.threads} threads: B {args.batch}, I {args.input}, H {args.hidden}, T {args.length}")
print(f"  training step: {train * 1e3:.1f} ms   inference: {inference * 1e3:.1f} ms   peak memory: {peak_gib:.2f} GiB")
