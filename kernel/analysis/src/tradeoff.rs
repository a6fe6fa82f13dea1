//! The contract for tradeoff models: closed-form predictions of a task metric from how
//! a parameter budget is split — N neurons of complexity k_e with k_c connections
//! each. `elmlab fit` fits a registered model to a sweep's results and asks it for the
//! best allocation at any budget. Models register with `inventory::submit!`.

/// One fitted parameter of a model.
pub struct ParamSpec {
    pub name: &'static str,
    pub doc: &'static str,
    /// Positive parameters are fitted on a log scale (they stay positive).
    pub positive: bool,
}

/// One measured point: an allocation and the metric it reached.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    pub n: f64,
    pub k_e: f64,
    pub k_c: f64,
    pub metric: f64,
}

pub trait TradeoffModel: Send + Sync {
    fn parameters(&self) -> &'static [ParamSpec];
    /// Starting points for the fit, from the data (in the model's own units); the fit
    /// starts from each and keeps the best, since these surfaces have local minima.
    fn initial_guesses(&self, data: &[Observation]) -> Vec<Vec<f64>>;
    /// The predicted metric.
    fn predict(&self, theta: &[f64], n: f64, k_e: f64, k_c: f64) -> f64;
    /// What the best allocation maximises (the model's information, or any score
    /// that is larger where the predicted metric is better).
    fn score(&self, theta: &[f64], n: f64, k_e: f64, k_c: f64) -> f64;
    /// A line saying what the model is, for printing beside the fit.
    fn formula(&self) -> &'static str;
}

pub struct TradeoffEntry {
    pub name: &'static str,
    pub doc: &'static str,
    pub build: fn() -> Box<dyn TradeoffModel>,
}

inventory::collect!(TradeoffEntry);

/// The registered tradeoff models, sorted by name.
pub fn entries() -> Vec<&'static TradeoffEntry> {
    let mut v: Vec<&'static TradeoffEntry> = inventory::iter::<TradeoffEntry>.into_iter().collect();
    v.sort_by_key(|e| e.name);
    v
}

pub fn find(name: &str) -> Result<&'static TradeoffEntry, String> {
    let all = entries();
    all.iter().find(|e| e.name == name).copied().ok_or_else(|| format!("no tradeoff model `{name}`; registered: {}", all.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")))
}

/// The allocation with the highest score on `N·(k_e + k_c) = budget` for a fixed `k_c`:
/// returns (N, k_e). Searches k_e on a log grid, then refines around the best point.
pub fn best_allocation(model: &dyn TradeoffModel, theta: &[f64], budget: f64, k_c: f64) -> Option<(f64, f64)> {
    let max_k_e = budget - k_c;
    if max_k_e <= 1.0 {
        return None;
    }
    let score = |k_e: f64| model.score(theta, budget / (k_e + k_c), k_e, k_c);
    let (lo, hi) = (0.0f64, max_k_e.ln());
    let grid = 400;
    let mut best = (f64::NEG_INFINITY, 0.0);
    for i in 0..=grid {
        let t = lo + (hi - lo) * i as f64 / grid as f64;
        let s = score(t.exp());
        if s > best.0 {
            best = (s, t);
        }
    }
    // Golden-section refinement in log k_e within one grid cell either side.
    let step = (hi - lo) / grid as f64;
    let (mut a, mut b) = ((best.1 - step).max(lo), (best.1 + step).min(hi));
    let g = 0.618_033_988_75;
    for _ in 0..60 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if score(c.exp()) > score(d.exp()) { b = d } else { a = c }
    }
    let k_e = ((a + b) / 2.0).exp();
    Some((budget / (k_e + k_c), k_e))
}
