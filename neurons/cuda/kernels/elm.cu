// One layer of ELM neurons over a whole sequence (elm-network.md §1), forward and
// backward through time, each pass one cooperative launch with the time loop inside.
// The same arithmetic as the CPU fused kernel (neurons/src/elm/kernel): a thread runs
// one neuron for one sequence per step ("item" n·B + b); the backward recomputes a step's
// intermediates from the kept states m, e, a and writes them to a scratch of rows × items
// (item-fastest, so a warp's accesses coalesce); the gradients of the sources, the
// synapse weights and the MLP weights are then gathered by their owners in a second
// phase of the step, each sum in a fixed order (no atomics: the same numbers on every run
// and every grid size).
#include "portable.h"

#define ELM_MAX_LAYERS 8
#define LECUN_SCALE 1.7159f
#define LECUN_SLOPE (2.0f / 3.0f)

// Everything a launch reads; mirrored field by field in src/args.rs.
struct ElmArgs {
    // parameters
    const float *w_s;             // [N, k_c]
    const unsigned *connectome;   // [N, k_c], into [inputs ; previous outputs]
    const float *mlp_w;           // each layer's [N, o, i], one after the other
    const float *mlp_b;           // each layer's [N, o]
    const float *w_y;             // [N, d_m]
    const float *b;               // [N]
    const float *kappa_m;         // [N, d_m]
    const float *okl;             // 1 − κ_λ, [N, d_m]
    const float *input_mask;      // [I, B], or null
    const float *recurrent_mask;  // [N, B], or null
    const unsigned *inverse_start;  // [I + N + 1]
    const unsigned *inverse;        // the synapses n·k_c + k by source, ascending
    // forward
    const float *x;    // [T, I, B]
    float *m;          // [T + 1, N·d_m, B]
    float *e;          // [T + 1, N, B]
    float *a;          // [T + 1, N, B]
    float *abs_delta;  // Σ_t Σ_d |Δ|, [N, B]
    float *activity;   // Σ_t relu(a), [N, B]
    float *scratch;    // [scratch rows, N·B]
    // backward
    const float *d_outputs;  // of a_1..a_T, [T, N, B]
    const float *up_abs;     // of abs_delta, [N, B], or null
    const float *up_act;     // of activity, [N, B], or null
    float *d_later;  // what reaches a_t as a source, [N, B] (zero at launch; d a_0 after)
    float *d_m;      // carried, [N·d_m, B] (d m_T at launch, d m_0 after)
    float *d_e;      // carried, [N, B]
    float *d_x;      // [T, I, B], or null
    float *d_beta;   // this step's branch gradients, [N, branches, B]
    float *acc;      // per-sequence gradient sums, [acc rows, N·B]
    float *g_w_s;    // [N, k_c], before the input scale
    float *g_mlp_w;  // laid out as mlp_w
    unsigned *barrier;  // two words, zero at launch
    long long w_offset[ELM_MAX_LAYERS];
    int b_offset[ELM_MAX_LAYERS];
    int layer_out[ELM_MAX_LAYERS];
    int layer_in[ELM_MAX_LAYERS];
    // scratch rows
    int in_row[ELM_MAX_LAYERS];
    int out_row[ELM_MAX_LAYERS];
    int dout_row[ELM_MAX_LAYERS];
    int din_row, mem_row, pre_row, a_row;
    // accumulator rows
    int acc_mlp_b[ELM_MAX_LAYERS];
    int acc_b, acc_w_y, acc_kappa_m, acc_okl;
    int units, inputs, memory, branches, synapses, batch, steps, layers;
    int activation;  // 0 relu², 1 relu, 2 silu
    int relu_output, high_pass, mlp_penalty, activity_penalty, kappa_grads, input_grads;
    float kappa_r, input_scale;
};

DEV float activate(int f, float x) {
    float r = x > 0.0f ? x : 0.0f;
    if (f == 0) return r * r;
    if (f == 1) return r;
    return x / (1.0f + exp(-x));
}

DEV float activate_slope(int f, float x) {
    if (f == 0) return 2.0f * (x > 0.0f ? x : 0.0f);
    if (f == 1) return x > 0.0f ? 1.0f : 0.0f;
    float s = 1.0f / (1.0f + exp(-x));
    return s + x * s * (1.0f - s);
}

// Source j of step t for sequence b: an input, or an output of the step before, masked.
DEV float source(const ElmArgs &p, int t, unsigned j, int b) {
    const int B = p.batch;
    if ((int)j < p.inputs) {
        float v = CONST_LOAD(p.x[((long long)t * p.inputs + j) * B + b]);
        return p.input_mask ? v * CONST_LOAD(p.input_mask[(long long)j * B + b]) : v;
    }
    int n = (int)j - p.inputs;
    float v = SHARED_LOAD(p.a[((long long)t * p.units + n) * B + b]);
    return p.recurrent_mask ? v * CONST_LOAD(p.recurrent_mask[(long long)n * B + b]) : v;
}

#define ROW(r) p.scratch[(long long)(r) * items + item]
#define ACC(r) p.acc[(long long)(r) * items + item]

// Item n·B + b's step t: the MLP's inputs and outputs into the scratch; the new state into
// m, e, a at t + 1 (forward) or into the scratch (the backward's recomputation).
DEV void neuron_step(const ElmArgs &p, int t, long long item, bool forward) {
    const int N = p.units, B = p.batch, dm = p.memory, kc = p.branches * p.synapses;
    const long long items = (long long)N * B;
    const int n = (int)(item / B), b = (int)(item % B);
    // 1. branch integration
    for (int br = 0; br < p.branches; ++br) {
        float sum = 0.0f;
        UNROLL4
        for (int k = br * p.synapses; k < (br + 1) * p.synapses; ++k) {
            long long syn = (long long)n * kc + k;
            sum += CONST_LOAD(p.w_s[syn]) * source(p, t, CONST_LOAD(p.connectome[syn]), b);
        }
        ROW(p.in_row[0] + br) = sum * p.input_scale;
    }
    // 2. decay
    for (int d = 0; d < dm; ++d) {
        float m_prev = p.m[((long long)t * N * dm + (long long)n * dm + d) * B + b];
        ROW(p.in_row[0] + p.branches + d) = CONST_LOAD(p.kappa_m[n * dm + d]) * m_prev;
    }
    // 3. the neuron's MLP
    const int last = p.layers - 1;
    for (int l = 0; l < p.layers; ++l) {
        const int o = p.layer_out[l], in = p.layer_in[l];
        const float *w = p.mlp_w + p.w_offset[l] + (long long)n * o * in;
        const float *bias = p.mlp_b + p.b_offset[l] + (long long)n * o;
        for (int r = 0; r < o; ++r) {
            float acc = CONST_LOAD(bias[r]);
            UNROLL4
            for (int c = 0; c < in; ++c) acc += CONST_LOAD(w[r * in + c]) * ROW(p.in_row[l] + c);
            ROW(p.out_row[l] + r) = acc;
            if (l < last) ROW(p.in_row[l + 1] + r) = activate(p.activation, acc);
        }
    }
    // 4.–5. bounded update into memory; 6. readout
    float readout = 0.0f;
    float abs_sum = forward && p.mlp_penalty ? p.abs_delta[item] : 0.0f;
    for (int d = 0; d < dm; ++d) {
        float delta = ROW(p.out_row[last] + d);
        float mem = ROW(p.in_row[0] + p.branches + d) + LECUN_SCALE * tanh(LECUN_SLOPE * delta) * CONST_LOAD(p.okl[n * dm + d]);
        if (forward) p.m[((long long)(t + 1) * N * dm + (long long)n * dm + d) * B + b] = mem;
        else ROW(p.mem_row + d) = mem;
        readout += CONST_LOAD(p.w_y[n * dm + d]) * mem;
        abs_sum += fabs(delta);
    }
    // 7. high-pass; 8. output
    float e_prev = p.e[((long long)t * N + n) * B + b];
    float e_new = e_prev, filtered = readout;
    if (p.high_pass) {
        e_new = p.kappa_r * e_prev + (1.0f - p.kappa_r) * readout;
        filtered = readout - e_new;
    }
    float pre = filtered + CONST_LOAD(p.b[n]);
    float out = p.relu_output ? (pre > 0.0f ? pre : 0.0f) : pre;
    if (forward) {
        p.e[((long long)(t + 1) * N + n) * B + b] = e_new;
        p.a[((long long)(t + 1) * N + n) * B + b] = out;
        if (p.mlp_penalty) p.abs_delta[item] = abs_sum;
        if (p.activity_penalty) p.activity[item] += out > 0.0f ? out : 0.0f;
    } else {
        ROW(p.pre_row) = pre;
        ROW(p.a_row) = out;
    }
}

// Item n·B + b's backward step t, after neuron_step recomputed it: the carried d_m, d_e
// replaced, the per-sequence sums added to, each layer's output gradient and the branch
// gradients written for the gather phase.
DEV void neuron_backward(const ElmArgs &p, int t, long long item) {
    const int N = p.units, B = p.batch, dm = p.memory;
    const long long items = (long long)N * B;
    const int n = (int)(item / B);
    // 8. output and activity penalty; 7. high-pass
    float d_a = CONST_LOAD(p.d_outputs[(long long)t * items + item]) + SHARED_LOAD(p.d_later[item]);
    float out = ROW(p.a_row), pre = ROW(p.pre_row);
    if (p.up_act && out > 0.0f) d_a += CONST_LOAD(p.up_act[item]);
    float d_pre = p.relu_output && pre <= 0.0f ? 0.0f : d_a;
    ACC(p.acc_b) += d_pre;
    float d_r = d_pre;
    if (p.high_pass) {
        float d_e_total = p.d_e[item] - d_pre;
        p.d_e[item] = d_e_total * p.kappa_r;
        d_r = d_pre + d_e_total * (1.0f - p.kappa_r);
    }
    // 6. readout; 5.–4. memory update: the gradient of the MLP's output Δ
    const int last = p.layers - 1;
    for (int d = 0; d < dm; ++d) {
        const long long md = ((long long)n * dm + d) * B + item % B;
        float mem = ROW(p.mem_row + d), delta = ROW(p.out_row[last] + d);
        ACC(p.acc_w_y + d) += d_r * mem;
        float dmv = p.d_m[md] + d_r * CONST_LOAD(p.w_y[n * dm + d]);
        float th = tanh(LECUN_SLOPE * delta);
        float dd = dmv * CONST_LOAD(p.okl[n * dm + d]) * (LECUN_SCALE * LECUN_SLOPE) * (1.0f - th * th);
        if (p.kappa_grads) ACC(p.acc_okl + d) += dmv * LECUN_SCALE * th;
        if (p.up_abs) {
            float sign = delta > 0.0f ? 1.0f : (delta < 0.0f ? -1.0f : 0.0f);
            dd += sign * CONST_LOAD(p.up_abs[item]);
        }
        p.d_m[md] = dmv;
        ROW(p.dout_row[last] + d) = dd;
    }
    // 3. MLP backward, last layer first
    for (int l = last; l >= 0; --l) {
        const int o = p.layer_out[l], in = p.layer_in[l];
        const float *w = p.mlp_w + p.w_offset[l] + (long long)n * o * in;
        for (int r = 0; r < o; ++r) ACC(p.acc_mlp_b[l] + r) += ROW(p.dout_row[l] + r);
        for (int c = 0; c < in; ++c) {
            float sum = 0.0f;
            for (int r = 0; r < o; ++r) sum += CONST_LOAD(w[r * in + c]) * ROW(p.dout_row[l] + r);
            if (l > 0) ROW(p.dout_row[l - 1] + c) = sum * activate_slope(p.activation, ROW(p.out_row[l - 1] + c));
            else ROW(p.din_row + c) = sum;
        }
    }
    // 2. decay: the memory's gradient flows to m_{t-1} directly and through z
    for (int d = 0; d < dm; ++d) {
        const long long md = ((long long)n * dm + d) * B + item % B;
        float total = p.d_m[md] + ROW(p.din_row + p.branches + d);
        if (p.kappa_grads) ACC(p.acc_kappa_m + d) += total * p.m[((long long)t * N * dm) * B + md];
        p.d_m[md] = total * CONST_LOAD(p.kappa_m[n * dm + d]);
    }
    // 1. branch integration: the gather phase sends these to the sources
    for (int br = 0; br < p.branches; ++br)
        p.d_beta[((long long)n * p.branches + br) * B + item % B] = ROW(p.din_row + br);
}

// One unit of the gather phase: a source's gradient for one sequence, a synapse weight's
// or an MLP weight's gradient summed over the sequences.
DEV void gather(const ElmArgs &p, int t, long long work) {
    const int N = p.units, B = p.batch, kc = p.branches * p.synapses;
    const long long items = (long long)N * B;
    const int first = p.input_grads ? 0 : p.inputs;
    const long long sources = (long long)(p.inputs + N - first) * B;
    if (work < sources) {
        const int j = first + (int)(work / B), b = (int)(work % B);
        float sum = 0.0f;
        UNROLL4
        for (unsigned s = CONST_LOAD(p.inverse_start[j]); s < CONST_LOAD(p.inverse_start[j + 1]); ++s) {
            unsigned syn = CONST_LOAD(p.inverse[s]);
            int n = (int)(syn / kc), br = (int)(syn % kc) / p.synapses;
            sum += CONST_LOAD(p.w_s[syn]) * p.input_scale * SHARED_LOAD(p.d_beta[((long long)n * p.branches + br) * B + b]);
        }
        if (j < p.inputs) {
            if (p.input_mask) sum *= CONST_LOAD(p.input_mask[(long long)j * B + b]);
            p.d_x[((long long)t * p.inputs + j) * B + b] = sum;
        } else {
            if (p.recurrent_mask) sum *= CONST_LOAD(p.recurrent_mask[(long long)(j - p.inputs) * B + b]);
            p.d_later[(long long)(j - p.inputs) * B + b] = sum;
        }
        return;
    }
    work -= sources;
    if (work < (long long)N * kc) {
        const int n = (int)(work / kc), br = (int)(work % kc) / p.synapses;
        const unsigned j = CONST_LOAD(p.connectome[work]);
        float sum = 0.0f;
        for (int b = 0; b < B; ++b)
            sum += SHARED_LOAD(p.d_beta[((long long)n * p.branches + br) * B + b]) * source(p, t, j, b);
        p.g_w_s[work] += sum;
        return;
    }
    work -= (long long)N * kc;
    for (int l = 0; l < p.layers; ++l) {
        const int o = p.layer_out[l], in = p.layer_in[l];
        const long long count = (long long)N * o * in;
        if (work < count) {
            const int n = (int)(work / ((long long)o * in)), r = (int)(work / in % o), c = (int)(work % in);
            const long long base = (long long)n * B;
            float sum = 0.0f;
            for (int b = 0; b < B; ++b)
                sum += SHARED_LOAD(p.scratch[(long long)(p.dout_row[l] + r) * items + base + b]) *
                       SHARED_LOAD(p.scratch[(long long)(p.in_row[l] + c) * items + base + b]);
            p.g_mlp_w[p.w_offset[l] + work] += sum;
            return;
        }
        work -= count;
    }
}

DEV long long gather_work(const ElmArgs &p) {
    const int first = p.input_grads ? 0 : p.inputs;
    long long total = (long long)(p.inputs + p.units - first) * p.batch + (long long)p.units * p.branches * p.synapses;
    for (int l = 0; l < p.layers; ++l) total += (long long)p.units * p.layer_out[l] * p.layer_in[l];
    return total;
}

// The forward pass: T steps, one grid barrier after each.
KERNEL elm_forward(ElmArgs p) {
    const long long items = (long long)p.units * p.batch;
    for (int t = 0; t < p.steps; ++t) {
        PHASE {
            for (long long item = THREAD_ID; item < items; item += THREAD_COUNT) neuron_step(p, t, item, true);
        }
        GRID_SYNC(p);
    }
}

// Backward through time: per step, the neurons (recomputed, then backward), a barrier,
// the gathers, a barrier.
KERNEL elm_backward(ElmArgs p) {
    const long long items = (long long)p.units * p.batch;
    const long long work = gather_work(p);
    for (int t = p.steps - 1; t >= 0; --t) {
        PHASE {
            for (long long item = THREAD_ID; item < items; item += THREAD_COUNT) {
                neuron_step(p, t, item, false);
                neuron_backward(p, t, item);
            }
        }
        GRID_SYNC(p);
        PHASE {
            for (long long w = THREAD_ID; w < work; w += THREAD_COUNT) gather(p, t, w);
        }
        GRID_SYNC(p);
    }
}
