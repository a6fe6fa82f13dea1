//! Optimisers (Adam, Adamax, AdamW) and global-norm clipping: the update as one loop on
//! the host in a CPU build, in dfdx tensor ops (any device) otherwise; the same numbers.

use crate::config::{OptimizerConfig, OptimizerKind as Rule};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{values, Matrix};
use elmlab_host_ops as host_op;
use rayon::prelude::*;
use std::ops::Range;

/// Values per parallel piece of the host update.
const CHUNK: usize = 1 << 15;


#[derive(Clone, Debug)]
pub struct Optimizer {
    pub rule: Rule,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates made so far (Adam's `t` is this plus one during an update).
    pub updates: u64,
    /// First moments, one per parameter in store order (read them with
    /// [`Optimizer::moments`]: the CPU update keeps newer values on the host).
    m: Vec<Matrix>,
    /// Second moments (Adam, AdamW) or infinity-norm accumulators (Adamax).
    v: Vec<Matrix>,
    /// Where each parameter lies in the flat host buffers (store order, side by side).
    ranges: Vec<Range<usize>>,
    /// The CPU update's flat buffers, reused across steps.
    host: HostBuffers,
    /// Whether the moments in `host` are newer than `m` and `v`: the CPU update keeps
    /// them there between steps instead of copying them out and back in (4 of its 7 copies).
    host_moments: bool,
}

/// Every parameter side by side, so that one parallel pass (not one per parameter) updates them.
#[derive(Clone, Debug, Default)]
struct HostBuffers {
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    grads: Vec<f32>,
}

impl Optimizer {
    pub fn new(cfg: &OptimizerConfig, store: &ParamStore) -> Self {
        let rule = cfg.kind;
        let zeros = || store.iter().map(|p| { let dev = p.value.device().clone(); dev.zeros_like(p.value.shape()) }).collect::<Vec<_>>();
        let ranges = store.iter().scan(0, |end, p| {
            *end += p.numel();
            Some(*end - p.numel()..*end)
        });
        Optimizer {
            rule,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            updates: 0,
            m: zeros(),
            v: zeros(),
            ranges: ranges.collect(),
            host: HostBuffers::default(),
            host_moments: false,
        }
    }

    /// The moments of parameter `i`, row-major: `(m, v)`.
    pub fn moments(&self, i: usize) -> (Vec<f32>, Vec<f32>) {
        if self.host_moments {
            let range = self.ranges[i].clone();
            (self.host.m[range.clone()].to_vec(), self.host.v[range].to_vec())
        } else {
            (values(&self.m[i]), values(&self.v[i]))
        }
    }

    /// Replaces the moments of parameter `i` (row-major, its size), e.g. from a checkpoint.
    pub fn set_moments(&mut self, i: usize, m: &[f32], v: &[f32]) {
        self.moments_to_tensors();
        self.m[i].copy_from(m);
        self.v[i].copy_from(v);
    }

    /// Writes moments kept on the host back into `m` and `v`.
    fn moments_to_tensors(&mut self) {
        if std::mem::take(&mut self.host_moments) {
            for (i, range) in self.ranges.iter().enumerate() {
                self.m[i].copy_from(&self.host.m[range.clone()]);
                self.v[i].copy_from(&self.host.v[range.clone()]);
            }
        }
    }

    /// One update of every parameter with its gradient (`grads` in store order).
    pub fn update(&mut self, store: &mut ParamStore, grads: &[Matrix], lr: f64) {
        if host_op::AVAILABLE {
            self.update_on_host(store, grads, lr)
        } else {
            self.update_with_tensors(store, grads, lr)
        }
    }

    /// The update as one loop over each parameter's values on the host: the same
    /// operations in the same order as [`Self::update_with_tensors`] (the same numbers,
    /// checked in the tests), in reused buffers and written back in place, without a
    /// tensor allocated per operation (about a dozen passes over memory become eight).
    fn update_on_host(&mut self, store: &mut ParamStore, grads: &[Matrix], lr: f64) {
        assert_eq!(grads.len(), store.len());
        self.updates += 1;
        let t = self.updates as i32;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let (bias1, bias2) = ((1.0 - self.beta1.powi(t)) as f32, (1.0 - self.beta2.powi(t)) as f32);
        let (eps, lr32) = (self.eps as f32, lr as f32);
        let decay = (self.rule == Rule::AdamW && self.weight_decay > 0.0).then_some(1.0 - (lr * self.weight_decay) as f32);
        let total = self.ranges.last().map_or(0, |r| r.end);
        let mut host = std::mem::take(&mut self.host);
        for buffer in [&mut host.params, &mut host.m, &mut host.v, &mut host.grads] {
            buffer.resize(total, 0.0);
        }
        for (i, (g, range)) in grads.iter().zip(&self.ranges).enumerate() {
            store.param_at(i).value.copy_into(&mut host.params[range.clone()]);
            if !self.host_moments {
                self.m[i].copy_into(&mut host.m[range.clone()]);
                self.v[i].copy_into(&mut host.v[range.clone()]);
            }
            g.copy_into(&mut host.grads[range.clone()]);
        }
        let HostBuffers { params: p, m, v, grads: gv } = &mut host;
        // elementwise, so any split over threads gives the same numbers
        let rule = self.rule;
        let chunks = p.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).zip(gv.par_chunks(CHUNK));
        chunks.for_each(move |(((p, m), v), g)| {
            // equal lengths stated once and the constants moved in (not read through references
            // that might alias the buffers): the loops run without bounds checks and vectorise
            let n = p.len();
            let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
            match rule {
                Rule::Adam | Rule::AdamW => {
                    for j in 0..n {
                        m[j] = m[j] * b1 + g[j] * (1.0 - b1);
                        v[j] = v[j] * b2 + g[j] * g[j] * (1.0 - b2);
                        let step = (m[j] / bias1) / ((v[j] / bias2).sqrt() + eps);
                        let kept = match decay {
                            Some(d) => p[j] * d,
                            None => p[j],
                        };
                        p[j] = kept - step * lr32;
                    }
                }
                Rule::Adamax => {
                    for j in 0..n {
                        m[j] = m[j] * b1 + g[j] * (1.0 - b1);
                        v[j] = (v[j] * b2).max(g[j].abs() + eps);
                        let step = (m[j] / v[j]) / bias1;
                        p[j] -= step * lr32;
                    }
                }
            }
        });
        for (i, range) in self.ranges.iter().enumerate() {
            store.value_mut(i).copy_from(&host.params[range.clone()]);
        }
        self.host = host;
        self.host_moments = true;
    }

    /// The update in dfdx tensor ops, on whatever device holds the parameters.
    fn update_with_tensors(&mut self, store: &mut ParamStore, grads: &[Matrix], lr: f64) {
        assert_eq!(grads.len(), store.len());
        self.moments_to_tensors();
        self.updates += 1;
        let t = self.updates as i32;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let bias1 = 1.0 - self.beta1.powi(t);
        for (i, g) in grads.iter().enumerate() {
            let p = store.param_at(i).value.clone();
            let m = self.m[i].clone() * b1 + g.clone() * (1.0 - b1);
            let (v, step) = match self.rule {
                Rule::Adam | Rule::AdamW => {
                    let v = self.v[i].clone() * b2 + g.clone().square() * (1.0 - b2);
                    let bias2 = 1.0 - self.beta2.powi(t);
                    let denom = (v.clone() / bias2 as f32).sqrt() + self.eps as f32;
                    let step = (m.clone() / bias1 as f32) / denom;
                    (v, step)
                }
                Rule::Adamax => {
                    let v = (self.v[i].clone() * b2).maximum(g.clone().abs() + self.eps as f32);
                    let step = (m.clone() / v.clone()) / bias1 as f32;
                    (v, step)
                }
            };
            let decayed = if self.rule == Rule::AdamW && self.weight_decay > 0.0 { p.clone() * (1.0 - (lr * self.weight_decay) as f32) } else { p };
            store.set_values(i, decayed - step * lr as f32);
            self.m[i] = m;
            self.v[i] = v;
        }
    }
}

/// The global L2 norm of all gradients.
pub fn global_norm(grads: &[Matrix]) -> f64 {
    grads.iter().map(|g| g.clone().square().sum::<(), _>().array() as f64).sum::<f64>().sqrt()
}

/// Scales all gradients so that their global norm is at most `max_norm` (the PyTorch
/// rule: factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut [Matrix], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        for g in grads.iter_mut() {
            *g = g.clone() * factor as f32;
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerConfig;

    fn cfg(kind: Rule, wd: f64) -> OptimizerConfig {
        OptimizerConfig { kind, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd }
    }

    fn store(values: Vec<f32>) -> ParamStore {
        let mut s = ParamStore::new();
        let n = values.len();
        s.insert("w", &[n], values).unwrap();
        s
    }

    fn grad(values: Vec<f32>) -> Vec<Matrix> {
        let n = values.len();
        vec![elmlab_core::tensor::device().tensor_from_vec(values, (1, n))]
    }

    /// Two Adam steps worked by hand in f64 from the algebra of training.md.
    #[test]
    fn adam_matches_hand_computation() {
        let mut s = store(vec![1.0, -2.0]);
        let mut opt = Optimizer::new(&cfg(Rule::Adam, 0.0), &s);
        let (g1, g2) = ([0.5f64, -1.0], [0.25f64, 3.0]);
        opt.update(&mut s, &grad(g1.iter().map(|&x| x as f32).collect()), 0.1);
        opt.update(&mut s, &grad(g2.iter().map(|&x| x as f32).collect()), 0.05);
        let mut expect = [1.0f64, -2.0];
        for i in 0..2 {
            let (mut m, mut v) = (0.0f64, 0.0f64);
            for (t, (g, lr)) in [(g1[i], 0.1), (g2[i], 0.05)].into_iter().enumerate() {
                let t = (t + 1) as i32;
                m = 0.9 * m + 0.1 * g;
                v = 0.999 * v + 0.001 * g * g;
                expect[i] -= lr * (m / (1.0 - 0.9f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
            }
        }
        let got = s.values("w");
        for i in 0..2 {
            assert!((got[i] as f64 - expect[i]).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
    }

    /// The host loop and the tensor ops give the same numbers, bit for bit, for every rule.
    #[test]
    fn host_update_equals_tensor_update() {
        for (kind, wd) in [(Rule::Adam, 0.0), (Rule::AdamW, 0.3), (Rule::Adamax, 0.0)] {
            let values: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let (mut host, mut tensors) = (store(values.clone()), store(values));
            let (mut a, mut b) = (Optimizer::new(&cfg(kind, wd), &host), Optimizer::new(&cfg(kind, wd), &tensors));
            for step in 0..4 {
                let g = grad((0..37).map(|i| (((i + step) * 4801) % 97) as f32 / 30.0 - 1.5).collect());
                let lr = 0.1 / (step + 1) as f64;
                a.update_on_host(&mut host, &g, lr);
                b.update_with_tensors(&mut tensors, &g, lr);
                assert_eq!(host.values("w"), tensors.values("w"), "{kind:?} step {step}");
                assert_eq!(a.moments(0), b.moments(0), "{kind:?} moments");
            }
        }
    }

    /// Moments replaced between host updates (as a resumed run does) are the ones the next
    /// update uses: the host copy is written back and refreshed, as on the tensor path.
    #[test]
    fn moments_set_between_host_updates_are_used() {
        let values: Vec<f32> = (0..9).map(|i| i as f32 / 4.0 - 1.0).collect();
        let (mut host, mut tensors) = (store(values.clone()), store(values));
        let (mut a, mut b) = (Optimizer::new(&cfg(Rule::Adam, 0.0), &host), Optimizer::new(&cfg(Rule::Adam, 0.0), &tensors));
        let g = |k: usize| grad((0..9).map(|i| ((i * k) % 5) as f32 - 2.0).collect());
        a.update_on_host(&mut host, &g(3), 0.1);
        b.update_with_tensors(&mut tensors, &g(3), 0.1);
        let (m, v): (Vec<f32>, Vec<f32>) = ((0..9).map(|i| i as f32 * 0.01).collect(), (0..9).map(|i| 0.5 + i as f32 * 0.02).collect());
        a.set_moments(0, &m, &v);
        b.set_moments(0, &m, &v);
        assert_eq!(a.moments(0), (m.clone(), v.clone()));
        a.update_on_host(&mut host, &g(7), 0.1);
        b.update_with_tensors(&mut tensors, &g(7), 0.1);
        assert_eq!(host.values("w"), tensors.values("w"));
        assert_eq!(a.moments(0), b.moments(0));
        assert_ne!(a.moments(0).0, m, "the update moved the moments it was given");
    }

    #[test]
    fn adamax_matches_hand_computation() {
        let mut s = store(vec![0.3]);
        let mut opt = Optimizer::new(&cfg(Rule::Adamax, 0.0), &s);
        opt.update(&mut s, &grad(vec![2.0]), 0.1);
        opt.update(&mut s, &grad(vec![-1.0]), 0.1);
        // step 1: m=0.2, u=max(0, 2+eps)=2, p -= 0.1/(0.1) * 0.2/2 = 0.1
        // step 2: m=0.18-0.1=0.08, u=max(1.998, 1+eps)=1.998, p -= 0.1/(1-0.81) * 0.08/1.998
        let expect = 0.3 - 0.1 - 0.1 / 0.19 * 0.08 / 1.998;
        assert!((s.values("w")[0] as f64 - expect).abs() < 1e-6);
    }

    #[test]
    fn adamw_decays_weights_decoupled() {
        let mut s = store(vec![2.0]);
        let mut opt = Optimizer::new(&cfg(Rule::AdamW, 0.5), &s);
        opt.update(&mut s, &grad(vec![1.0]), 0.1);
        // p = 2*(1 - 0.1*0.5) - 0.1 * 1/(1+1e-8) = 1.9 - 0.1
        assert!((s.values("w")[0] as f64 - 1.8).abs() < 1e-6);
    }

    #[test]
    fn zero_lr_leaves_weights_but_advances_moments() {
        let mut s = store(vec![1.5]);
        let mut opt = Optimizer::new(&cfg(Rule::Adamax, 0.0), &s);
        opt.update(&mut s, &grad(vec![4.0]), 0.0);
        assert_eq!(s.values("w")[0], 1.5);
        assert!((opt.moments(0).0[0] - 0.4).abs() < 1e-7);
        assert_eq!(opt.updates, 1);
    }

    #[test]
    fn clipping_scales_to_the_limit_and_leaves_small_gradients() {
        let dev = elmlab_core::tensor::device();
        let mut g = vec![dev.tensor_from_vec(vec![3.0f32, 0.0], (1, 2)), dev.tensor_from_vec(vec![4.0f32], (1, 1))];
        let norm = clip_global_norm(&mut g, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        assert!((global_norm(&g) - 1.0).abs() < 1e-5);
        assert!((g[0].as_vec()[0] - 0.6).abs() < 1e-5 && (g[1].as_vec()[0] - 0.8).abs() < 1e-5);
        let mut small = vec![dev.tensor_from_vec(vec![0.3f32, 0.4], (1, 2))];
        clip_global_norm(&mut small, 1.0);
        assert_eq!(small[0].as_vec(), vec![0.3, 0.4]);
    }
}
