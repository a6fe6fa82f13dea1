// The LSTM over a whole sequence, forward and backward, each one cooperative launch with
// the time loop inside; the arithmetic of the CPU fused kernel (neurons/src/gated/
// lstm_kernel.rs): gates in PyTorch's order (i, f, g, o), the weights joined as
// [W_ih | W_hh] with rows unit-major (4u + k), every buffer step-major with the batch last.
// The input half of every step's product runs first for all steps at once (it does not
// depend on the recurrence); a step then needs only the recurrent half, one item (unit,
// sequence) per thread, and one grid barrier. Backward gathers W_hhᵀ·δ_{t+1} per item the
// same way; the weight gradients are one contraction over all steps after the loop, each
// 4 × 4 tile of weights summed by one thread in a fixed order (no atomics).
#include "portable.h"

// Everything a launch reads; mirrored field by field in src/args.rs.
struct LstmArgs {
    const float *w;     // [4H, I + H], rows unit-major
    const float *bias;  // [4H], b_ih + b_hh, unit-major
    const float *x;     // [T, I, B]
    float *hs;          // [T + 1, H, B]: h_0 given, h_1.. written
    float *cs;          // [T + 1, H, B]: c_0 given
    float *gates;       // [T, 4H, B]: the input product, then the activations
    // backward
    const float *d_h;   // of h_1..h_T, [T, H, B]
    float *d_c;         // carried, [H, B] (d c_T at launch, d c_0 after)
    float *d_pre;       // [T, 4H, B]
    float *d_h0;        // [H, B]
    float *d_w;         // [4H, I + H]
    float *d_bias;      // [4H]
    float *d_x;         // [T, I, B], or null
    unsigned *barrier;  // two words, zero at launch
    int hidden, inputs, batch, steps;
};

DEV float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// The input half of every step's product, plus the bias: gates[t][r][b].
DEV void input_product(const LstmArgs &p, long long work) {
    const int H = p.hidden, I = p.inputs, B = p.batch, K = I + H;
    const long long per_step = 4LL * H * B;
    const int t = (int)(work / per_step), r = (int)(work % per_step / B), b = (int)(work % B);
    float sum = CONST_LOAD(p.bias[r]);
    const float *x = p.x + (long long)t * I * B;
    UNROLL4
    for (int c = 0; c < I; ++c) sum += CONST_LOAD(p.w[(long long)r * K + c]) * CONST_LOAD(x[(long long)c * B + b]);
    p.gates[(long long)t * per_step + (long long)r * B + b] = sum;
}

// Unit u of sequence b at step t: the recurrent half, the gates, c_{t+1}, h_{t+1}.
DEV void forward_item(const LstmArgs &p, int t, long long item) {
    const int H = p.hidden, I = p.inputs, B = p.batch, K = I + H;
    const int u = (int)(item / B), b = (int)(item % B);
    const float *h = p.hs + (long long)t * H * B;
    float *g = p.gates + (long long)t * 4 * H * B;
    float act[4];
    for (int k = 0; k < 4; ++k) {
        const int r = 4 * u + k;
        float sum = 0.0f;
        UNROLL4
        for (int c = 0; c < H; ++c) sum += CONST_LOAD(p.w[(long long)r * K + I + c]) * SHARED_LOAD(h[(long long)c * B + b]);
        float pre = SHARED_LOAD(g[(long long)r * B + b]) + sum;
        act[k] = k == 2 ? tanh(pre) : sigmoid(pre);
        g[(long long)r * B + b] = act[k];
    }
    float c = act[1] * p.cs[((long long)t * H + u) * B + b] + act[0] * act[2];
    p.cs[((long long)(t + 1) * H + u) * B + b] = c;
    p.hs[((long long)(t + 1) * H + u) * B + b] = act[3] * tanh(c);
}

// Σ_r W_hh[r][u] · δ[r][b] over the 4H gate rows of one step's δ.
DEV float recurrent_back(const LstmArgs &p, const float *delta, int u, int b) {
    const int H = p.hidden, K = p.inputs + H, B = p.batch;
    float sum = 0.0f;
    UNROLL4
    for (int r = 0; r < 4 * H; ++r) sum += CONST_LOAD(p.w[(long long)r * K + p.inputs + u]) * SHARED_LOAD(delta[(long long)r * B + b]);
    return sum;
}

// Unit u of sequence b at step t backward: δ of the four gates, the carried d_c.
DEV void backward_item(const LstmArgs &p, int t, long long item) {
    const int H = p.hidden, B = p.batch;
    const int u = (int)(item / B), b = (int)(item % B);
    const long long gb = 4LL * H * B;
    float carry = t + 1 < p.steps ? recurrent_back(p, p.d_pre + (long long)(t + 1) * gb, u, b) : 0.0f;
    const float *g = p.gates + (long long)t * gb;
    float i = CONST_LOAD(g[(4LL * u) * B + b]), f = CONST_LOAD(g[(4LL * u + 1) * B + b]);
    float gg = CONST_LOAD(g[(4LL * u + 2) * B + b]), o = CONST_LOAD(g[(4LL * u + 3) * B + b]);
    float c_prev = CONST_LOAD(p.cs[((long long)t * H + u) * B + b]), c = CONST_LOAD(p.cs[((long long)(t + 1) * H + u) * B + b]);
    float dh = CONST_LOAD(p.d_h[((long long)t * H + u) * B + b]) + carry;
    float tc = tanh(c);
    float dc = p.d_c[item] + dh * o * (1.0f - tc * tc);
    float *d = p.d_pre + (long long)t * gb;
    d[(4LL * u) * B + b] = dc * gg * i * (1.0f - i);
    d[(4LL * u + 1) * B + b] = dc * c_prev * f * (1.0f - f);
    d[(4LL * u + 2) * B + b] = dc * i * (1.0f - gg * gg);
    d[(4LL * u + 3) * B + b] = dh * tc * o * (1.0f - o);
    p.d_c[item] = dc * f;
}

// After the loop, one unit of work: d h_0 (per unit and sequence), a 4 × 4 tile of d W
// with its rows' d bias, or an input's gradient at one step.
DEV void after_loop(const LstmArgs &p, long long work) {
    const int H = p.hidden, I = p.inputs, B = p.batch, K = I + H, T = p.steps;
    const long long gb = 4LL * H * B;
    const long long hb = (long long)H * B;
    if (work < hb) {
        p.d_h0[work] = recurrent_back(p, p.d_pre, (int)(work / B), (int)(work % B));
        return;
    }
    work -= hb;
    const long long col_tiles = (K + 3) / 4;
    const long long tiles = (long long)H * col_tiles;  // 4H rows in tiles of 4
    if (work < tiles) {
        const int r0 = (int)(work / col_tiles) * 4, c0 = (int)(work % col_tiles) * 4;
        float acc[4][4] = {{0.0f}};
        float bias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int t = 0; t < T; ++t) {
            const float *d = p.d_pre + (long long)t * gb;
            for (int b = 0; b < B; ++b) {
                float dv[4], xv[4];
                for (int k = 0; k < 4; ++k) dv[k] = SHARED_LOAD(d[(long long)(r0 + k) * B + b]);
                for (int k = 0; k < 4; ++k) {
                    // column c of [x_t ; h_t]
                    const int c = c0 + k;
                    xv[k] = c >= K ? 0.0f : c < I ? CONST_LOAD(p.x[((long long)t * I + c) * B + b]) : CONST_LOAD(p.hs[((long long)t * H + c - I) * B + b]);
                }
                for (int r = 0; r < 4; ++r) {
                    for (int c = 0; c < 4; ++c) acc[r][c] += dv[r] * xv[c];
                    if (c0 == 0) bias[r] += dv[r];
                }
            }
        }
        for (int r = 0; r < 4; ++r) {
            for (int c = 0; c < 4 && c0 + c < K; ++c) p.d_w[(long long)(r0 + r) * K + c0 + c] = acc[r][c];
            if (c0 == 0) p.d_bias[r0 + r] = bias[r];
        }
        return;
    }
    work -= tiles;
    if (p.d_x && work < (long long)T * I * B) {
        const int t = (int)(work / ((long long)I * B)), c = (int)(work / B % I), b = (int)(work % B);
        const float *d = p.d_pre + (long long)t * gb;
        float sum = 0.0f;
        UNROLL4
        for (int r = 0; r < 4 * H; ++r) sum += CONST_LOAD(p.w[(long long)r * K + c]) * SHARED_LOAD(d[(long long)r * B + b]);
        p.d_x[work] = sum;
    }
}

KERNEL lstm_forward(LstmArgs p) {
    const long long items = (long long)p.hidden * p.batch, inputs = 4LL * items * p.steps;
    PHASE {
        for (long long w = THREAD_ID; w < inputs; w += THREAD_COUNT) input_product(p, w);
    }
    GRID_SYNC(p);
    for (int t = 0; t < p.steps; ++t) {
        PHASE {
            for (long long item = THREAD_ID; item < items; item += THREAD_COUNT) forward_item(p, t, item);
        }
        GRID_SYNC(p);
    }
}

KERNEL lstm_backward(LstmArgs p) {
    const long long items = (long long)p.hidden * p.batch;
    for (int t = p.steps - 1; t >= 0; --t) {
        PHASE {
            for (long long item = THREAD_ID; item < items; item += THREAD_COUNT) backward_item(p, t, item);
        }
        GRID_SYNC(p);
    }
    const long long work = items + (long long)p.hidden * ((p.inputs + p.hidden + 3) / 4) + (p.d_x ? (long long)p.steps * p.inputs * p.batch : 0);
    PHASE {
        for (long long w = THREAD_ID; w < work; w += THREAD_COUNT) after_loop(p, w);
    }
}
