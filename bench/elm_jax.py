"""The JAX peer of `elmlab bench` for the ELM Network: the model of
shared/spec/elm-network.md and the recipe of training.md, written here in JAX (a
`lax.scan` over time, one jit-compiled training step: forward with variational dropout,
penalties, label-smoothed cross-entropy, backward, global-norm clipping, Adamax/Adam).

    pip install jax numpy safetensors
    python3 bench/elm_jax.py --task shd_adding [--batch 8] [--threads 2] [--steps 3] [--json]
    python3 bench/elm_jax.py --check WEIGHTS --input batch.npy --record rec.npz

Timing: the median seconds of a training step and of an inference batch (logits and
their loss, as `elmlab bench` times an evaluation batch) after one untimed, compiling
call, on random inputs of the task's shape (speed does not depend on
the data), pinned to `--threads` cores.

Check: builds the network from an elmlab `weights.safetensors` (its own connectome and
timescales, the hyper-parameters from the config in its metadata), runs it on the batch
and compares the logits with `elmlab record WEIGHTS --input batch.npy --out rec.npz`;
prints the parameter count, the largest difference, and the loss at the last step.
bench/peer.py runs elmlab and this script alternately and prints the ratios.
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import time

TASKS = {
    # elm-network.md section 1 defaults and training.md recipes
    "shd_adding": dict(D=700, C=19, T=1000, N=96, d_m=5, d_mlp=10, l_mlp=1, d_tree=30, d_brch=10, lam=5.0,
                       tau=(1.0, 500.0), tau_r=5.0, s_in=10.0, rho=0.25, dropout=0.2, mlp_penalty=0.002,
                       activity_penalty=0.2, smoothing=0.01, optimizer="adamax", lr=5e-3, loss="last", one_hot=False),
    "enwik8": dict(D=204, C=204, T=100, N=1024, d_m=15, d_mlp=30, l_mlp=1, d_tree=50, d_brch=15, lam=5.0,
                   tau=(0.1, 100.0), tau_r=2.0, s_in=10.0, rho=0.8, dropout=0.0, mlp_penalty=0.01,
                   activity_penalty=1.0, smoothing=1e-4, optimizer="adam", lr=5e-4, loss="every", one_hot=True),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="shd_adding")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one untimed warm-up)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", metavar="WEIGHTS", help="an elmlab weights.safetensors to check against")
    p.add_argument("--input", metavar="NPY", help="with --check: the [B, T, D] input batch")
    p.add_argument("--record", metavar="NPZ", help="with --check: elmlab record's output on that batch")
    return p.parse_args()


ARGS = parse_args()
# Pin before JAX starts its thread pools, so "two threads" means two cores, as for elmlab.
if hasattr(os, "sched_setaffinity"):
    cores = sorted(os.sched_getaffinity(0))[: ARGS.threads]
    os.sched_setaffinity(0, set(cores))
os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if ARGS.threads > 1 else 'false'} "
                                   f"intra_op_parallelism_threads={ARGS.threads}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", False)


def log_spaced(lo, hi, n):
    return np.array([lo]) if n == 1 else np.geomspace(lo, hi, n)


def uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def layer_shapes(units, inputs, d_m, d_mlp, l_mlp, d_tree, d_brch):
    """The affine maps of one neuron's MLP: (out, in) per map."""
    z = d_tree + d_m
    if l_mlp == 0:
        return [(d_m, z)]
    return [(d_mlp, z)] + [(d_mlp, d_mlp)] * (l_mlp - 1) + [(d_m, d_mlp)]


def init_layer(rng, units, inputs, rho, d_m, d_mlp, l_mlp, d_tree, d_brch, tau):
    k_c = d_tree * d_brch
    params = {"w_s": uniform(rng, 1 / np.sqrt(d_brch), (units, k_c)), "mlp": []}
    for out, inp in layer_shapes(units, inputs, d_m, d_mlp, l_mlp, d_tree, d_brch):
        bound = 1 / np.sqrt(inp)
        params["mlp"].append((uniform(rng, bound, (units, out, inp)), uniform(rng, bound, (units, out))))
    params["w_y"] = uniform(rng, 1 / np.sqrt(d_m), (units, d_m))
    params["b"] = np.zeros(units, np.float32)
    # random fan-in with replacement: an input with probability 1 - rho, else a neuron
    recurrent = rng.random((units, k_c)) < rho
    idx = np.where(recurrent, inputs + rng.integers(0, units, (units, k_c)), rng.integers(0, inputs, (units, k_c)))
    fixed = {"idx": idx.astype(np.int32), "tau_m": np.tile(log_spaced(*tau, d_m), (units, 1)).astype(np.float32)}
    return params, fixed


def count(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def layer_step(p, f, h, v, dropout_masks, relu_out, tau_r, s_in, lam, d_tree, act):
    """One step of a layer of ELM neurons for a batch: v [B, S] candidate sources."""
    m, e = h
    if dropout_masks is not None:
        v = v * dropout_masks
    u = v[:, f["idx"]]                                     # [B, N, k_c]
    B, N, k_c = u.shape
    beta = s_in * (u * p["w_s"]).reshape(B, N, d_tree, k_c // d_tree).sum(-1)
    kappa_m = jnp.exp(-1.0 / f["tau_m"])
    kappa_l = jnp.exp(-lam / f["tau_m"])
    mt = kappa_m * m
    z = jnp.concatenate([beta, mt], axis=-1)
    maps = p["mlp"]
    for i, (w, b) in enumerate(maps):
        z = jnp.einsum("noi,bni->bno", w, z) + b
        if i < len(maps) - 1:
            z = act(z)
    delta = z
    m = mt + (1 - kappa_l) * 1.7159 * jnp.tanh(2.0 * delta / 3.0)
    r = (p["w_y"] * m).sum(-1)
    if tau_r is not None:
        kr = np.float32(np.exp(-1.0 / tau_r))
        e = kr * e + (1 - kr) * r
        r = r - e
    a = r + p["b"]
    if relu_out:
        a = jax.nn.relu(a)
    return (m, e), a, delta


def make_model(cfg, fixed):
    act = {"relu2": lambda x: jnp.square(jax.nn.relu(x)), "relu": jax.nn.relu}[cfg.get("act", "relu2")]

    def forward(params, x, masks):
        """x [B, T, D] → logits [T, B, C] (or the last step's), MLP |Δ| means, relu(a) means."""
        B = x.shape[0]
        N, C, dm, dr = cfg["N"], cfg["C"], cfg["d_m"], 3
        init = ((jnp.zeros((B, N, dm)), jnp.zeros((B, N))), jnp.zeros((B, N)), (jnp.zeros((B, C, dr)), jnp.zeros((B, C))), jnp.zeros((B, C)))
        hm, rm = (None, None) if masks is None else masks

        def step(carry, x_t):
            h_state, h_prev, r_state, r_prev = carry
            h_state, h_a, delta = layer_step(params["hidden"], fixed["hidden"], h_state, jnp.concatenate([x_t, h_prev], -1), hm, True,
                                             cfg["tau_r"], cfg["s_in"], cfg["lam"], cfg["d_tree"], act)
            r_state, r_a, _ = layer_step(params["readout"], fixed["readout"], r_state, jnp.concatenate([h_a, r_prev], -1), rm, False,
                                         None, cfg["s_in"], cfg["lam"], cfg["d_tree"], act)
            logits = r_a @ params["output"]["weight"].T + params["output"]["bias"]
            return (h_state, h_a, r_state, r_a), (logits, jnp.abs(delta).mean(-1), jax.nn.relu(h_a))

        _, (logits, delta_abs, relu_a) = jax.lax.scan(step, init, jnp.swapaxes(x, 0, 1))
        return logits, delta_abs, relu_a

    return forward


def cross_entropy(logits, labels, C, smoothing):
    target = (1 - smoothing) * jax.nn.one_hot(labels, C) + smoothing / C
    return -(target * jax.nn.log_softmax(logits, -1)).sum(-1).mean()


def make_train_step(cfg, forward):
    C = cfg["C"]

    def loss_fn(params, x, labels, masks):
        logits, delta_abs, relu_a = forward(params, x, masks)
        if cfg["loss"] == "last":
            ce = cross_entropy(logits[-1], labels, C, cfg["smoothing"])
        else:
            ce = cross_entropy(logits, jnp.swapaxes(labels, 0, 1), C, cfg["smoothing"])
        # per sequence: mean over neurons of (mean over steps and memory units of |Δ|)², batch mean
        mlp = jnp.square(delta_abs.mean(0)).mean(-1).mean()
        activity = relu_a.mean()
        return ce + cfg["mlp_penalty"] * mlp + cfg["activity_penalty"] * activity

    grad_fn = jax.value_and_grad(loss_fn)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def train_step(params, opt, x, labels, key, lr):
        masks = None
        if cfg["dropout"] > 0:
            keep = 1 - cfg["dropout"]
            k1, k2, k3, k4 = jax.random.split(key, 4)
            B = x.shape[0]
            # one Bernoulli per input channel and per recurrent neuron, per sequence
            hm = jnp.concatenate([jax.random.bernoulli(k1, keep, (B, cfg["D"])), jax.random.bernoulli(k2, keep, (B, cfg["N"]))], -1) / keep
            rm = jnp.concatenate([jax.random.bernoulli(k3, keep, (B, cfg["N"])), jax.random.bernoulli(k4, keep, (B, cfg["C"]))], -1) / keep
            masks = (hm, rm)
        loss, g = grad_fn(params, x, labels, masks)
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(l)) for l in jax.tree_util.tree_leaves(g)))
        g = jax.tree_util.tree_map(lambda l: l * jnp.minimum(1.0, 1.0 / (norm + 1e-6)), g)
        t = opt["t"] + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], g)
        if cfg["optimizer"] == "adamax":
            u = jax.tree_util.tree_map(lambda u, g: jnp.maximum(b2 * u, jnp.abs(g) + eps), opt["u"], g)
            params = jax.tree_util.tree_map(lambda p, m, u: p - lr / (1 - b1 ** t) * m / u, params, m, u)
        else:
            u = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, opt["u"], g)
            params = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps), params, m, u)
        return params, {"t": t, "m": m, "u": u}, loss

    return jax.jit(train_step)


def build(cfg, seed):
    rng = np.random.default_rng(seed)
    hp, hf = init_layer(rng, cfg["N"], cfg["D"], cfg["rho"], cfg["d_m"], cfg["d_mlp"], cfg["l_mlp"], cfg["d_tree"], cfg["d_brch"], cfg["tau"])
    rp, rf = init_layer(rng, cfg["C"], cfg["N"], 0.0, 3, 0, 0, cfg["d_tree"], cfg["d_brch"], cfg["tau"])
    bound = 1 / np.sqrt(cfg["C"])
    params = {"hidden": hp, "readout": rp, "output": {"weight": uniform(rng, bound, (cfg["C"], cfg["C"])), "bias": uniform(rng, bound, (cfg["C"],))}}
    return params, {"hidden": hf, "readout": rf}


def bench(cfg):
    params, fixed = build(cfg, ARGS.seed)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    fixed = jax.tree_util.tree_map(jnp.asarray, fixed)
    forward = make_model(cfg, fixed)
    step = make_train_step(cfg, forward)
    # an evaluation batch, as `elmlab bench` times one: logits and their loss (no dropout)
    def evaluate(p, x, labels):
        logits = forward(p, x, None)[0]
        if cfg["loss"] == "last":
            return cross_entropy(logits[-1], labels, cfg["C"], 0.0)
        return cross_entropy(logits, jnp.swapaxes(labels, 0, 1), cfg["C"], 0.0)

    infer = jax.jit(evaluate)
    opt = {"t": jnp.zeros((), jnp.float32), "m": jax.tree_util.tree_map(jnp.zeros_like, params), "u": jax.tree_util.tree_map(jnp.zeros_like, params)}
    rng = np.random.default_rng(ARGS.seed + 1)
    B, T = ARGS.batch, cfg["T"]
    if cfg["one_hot"]:
        symbols = rng.integers(0, cfg["C"], (B, T + 1))
        x = jnp.asarray(3.0 * np.eye(cfg["D"], dtype=np.float32)[symbols[:, :-1]])
        labels = jnp.asarray(symbols[:, 1:])
    else:
        x = jnp.asarray((rng.random((B, T, cfg["D"])) < 0.02).astype(np.float32))
        labels = jnp.asarray(rng.integers(0, cfg["C"], B))
    key = jax.random.PRNGKey(ARGS.seed)
    train_s, infer_s = [], []
    for i in range(ARGS.steps + 1):
        key, sub = jax.random.split(key)
        t0 = time.perf_counter()
        params, opt, loss = step(params, opt, x, labels, sub, cfg["lr"])
        loss.block_until_ready()
        if i:
            train_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        infer(params, x, labels).block_until_ready()
        if i:
            infer_s.append(time.perf_counter() - t0)
    out = {"peer": "jax", "jax": jax.__version__, "backend": jax.default_backend(), "task": ARGS.task, "batch": B, "steps_per_sequence": T, "threads": ARGS.threads,
           "params": count(params), "train_step_s": statistics.median(train_s), "infer_batch_s": statistics.median(infer_s),
           "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "loss": float(loss)}
    if ARGS.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{ARGS.task}: {out['params']} parameters, batch {B} x {T} steps, {ARGS.threads} threads, on {out['backend']}: "
              f"training step {out['train_step_s']:.3f} s, inference {out['infer_batch_s']:.3f} s (medians of {ARGS.steps})")


def setting(config, key, default):
    m = re.search(rf"\b{key}:\s*(Some\()?([^,\s)]+)", config)
    if not m:
        return default
    text = m.group(2)
    return None if text == "None" else text


def check():
    """Forward an elmlab weights file on a batch; compare with `elmlab record`."""
    from safetensors.numpy import load_file
    from safetensors import safe_open

    with safe_open(ARGS.check, "np") as f:
        config = f.metadata().get("config", "")
    t = load_file(ARGS.check)

    def layer(name):
        maps, i = [], 0
        while f"{name}.mlp.{i}.weight" in t:
            maps.append((t[f"{name}.mlp.{i}.weight"], t[f"{name}.mlp.{i}.bias"]))
            i += 1
        p = {"w_s": t[f"{name}.w_s"], "mlp": maps, "w_y": t[f"{name}.w_y"], "b": t[f"{name}.b"]}
        return p, {"idx": t[f"{name}.connectome"].astype(np.int32), "tau_m": t[f"{name}.tau_m"]}

    hp, hf = layer("hidden")
    rp, rf = layer("readout")
    params = {"hidden": hp, "readout": rp, "output": {"weight": t["output.weight"], "bias": t["output.bias"]}}
    x = np.load(ARGS.input).astype(np.float32)
    branches = int(setting(config, "branches", 0) or 0) or hp["mlp"][0][0].shape[2] - hp["w_y"].shape[1]
    tau_r = setting(config, "high_pass_tau", "5.0")
    cfg = dict(N=hp["b"].shape[0], C=rp["b"].shape[0], d_m=hp["w_y"].shape[1], d_tree=branches,
               lam=float(setting(config, "lambda", 5.0)), s_in=float(setting(config, "input_scale", 10.0)),
               tau_r=None if tau_r is None else float(tau_r), act=setting(config, "mlp_activation", "relu2").strip('"'))
    forward = make_model(cfg, jax.tree_util.tree_map(jnp.asarray, {"hidden": hf, "readout": rf}))
    logits = np.swapaxes(np.asarray(forward(jax.tree_util.tree_map(jnp.asarray, params), jnp.asarray(x), None)[0]), 0, 1)
    expected = np.load(ARGS.record)["logits"]
    diff = float(np.abs(logits - expected).max())
    scale = float(np.abs(expected).max())
    print(json.dumps({"params": count(params), "max_abs_difference": diff, "max_abs_logit": scale,
                      "last_step_mean_logsumexp": float(jax.nn.logsumexp(logits[:, -1], -1).mean())}, indent=2))
    return 0 if diff <= 1e-4 * max(1.0, scale) else 1


if __name__ == "__main__":
    if ARGS.check:
        if not (ARGS.input and ARGS.record):
            sys.exit("--check needs --input and --record")
        sys.exit(check())
    bench(dict(TASKS[ARGS.task]))
