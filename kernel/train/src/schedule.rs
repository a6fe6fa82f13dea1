//! Learning-rate schedules: linear warm-up from 0, then cosine, linear or constant.

pub use crate::config::Decay;
use crate::config::ScheduleConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub decay: Decay,
    /// Learning rate at the end, as a fraction of the peak.
    pub final_fraction: f64,
}


impl Schedule {
    pub fn from_config(cfg: &ScheduleConfig, peak: f64, total_steps: u64) -> Self {
        Schedule { peak, warmup_steps: cfg.warmup_steps, total_steps, decay: cfg.decay, final_fraction: cfg.final_lr }
    }

    /// Learning rate of the update made at `step` (0-based). During warm-up it rises
    /// linearly from 0 at step 0 (so the first update leaves the weights unchanged
    /// while the moments advance, as in the reference recipe) to the peak at
    /// `warmup_steps`; then it decays to `final_fraction * peak` at the last step.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let floor = self.final_fraction * self.peak;
        let shape = match self.decay {
            Decay::Constant => return self.peak,
            Decay::Linear => 1.0 - progress,
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        floor + (self.peak - floor) * shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(peak: f64, warmup: u64, total: u64) -> Schedule {
        Schedule { peak, warmup_steps: warmup, total_steps: total, decay: Decay::Cosine, final_fraction: 0.0 }
    }

    #[test]
    fn warmup_starts_at_zero_and_reaches_the_peak() {
        let s = cosine(5e-3, 400, 140_000);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(100) - 5e-3 * 0.25).abs() < 1e-15);
        assert!((s.lr(400) - 5e-3).abs() < 1e-15);
    }

    #[test]
    fn cosine_halfway_is_half_and_ends_at_zero() {
        let s = cosine(1.0, 100, 1100);
        assert!((s.lr(600) - 0.5).abs() < 1e-12);
        // a quarter of the way: 0.5 (1 + cos(pi/4))
        let q = 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos());
        assert!((s.lr(350) - q).abs() < 1e-12);
        assert!(s.lr(1100).abs() < 1e-12);
    }

    #[test]
    fn linear_and_constant_and_floor() {
        let lin = Schedule { peak: 2.0, warmup_steps: 0, total_steps: 10, decay: Decay::Linear, final_fraction: 0.5 };
        assert!((lin.lr(0) - 2.0).abs() < 1e-12);
        assert!((lin.lr(5) - 1.5).abs() < 1e-12);
        assert!((lin.lr(10) - 1.0).abs() < 1e-12);
        let c = Schedule { peak: 3.0, warmup_steps: 2, total_steps: 10, decay: Decay::Constant, final_fraction: 0.0 };
        assert_eq!(c.lr(1), 1.5);
        assert_eq!(c.lr(9), 3.0);
    }
}
