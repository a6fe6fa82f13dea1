//! Nonlinear least squares (Levenberg–Marquardt) in f64 for the tradeoff models: the
//! fitted values, their standard errors from the curvature at the optimum, and the
//! fit quality.

use crate::tradeoff::{Observation, TradeoffModel};

#[derive(Debug)]
pub struct Fit {
    pub theta: Vec<f64>,
    /// Standard errors (NaN where the data do not pin a parameter down).
    pub std_err: Vec<f64>,
    pub rmse: f64,
    pub r_squared: f64,
    pub points: usize,
    pub iterations: usize,
}

/// Solves `a x = b` (a small dense system) by Gaussian elimination with partial
/// pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

fn inverse(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let cols: Option<Vec<Vec<f64>>> = (0..n).map(|j| solve(a.to_vec(), (0..n).map(|i| if i == j { 1.0 } else { 0.0 }).collect())).collect();
    let cols = cols?;
    Some((0..n).map(|i| (0..n).map(|j| cols[j][i]).collect()).collect())
}

/// Fits `model` to `data` from each of the model's starting points and keeps the
/// smallest residual. Parameters named in `fixed` (index, value) are held.
pub fn fit(model: &dyn TradeoffModel, data: &[Observation], fixed: &[(usize, f64)]) -> Result<Fit, String> {
    let specs = model.parameters();
    let free = specs.len() - fixed.len();
    // Repeated allocations (seeds) average noise but add no shape information.
    let mut distinct: Vec<[u64; 3]> = data.iter().map(|o| [o.n.to_bits(), o.k_e.to_bits(), o.k_c.to_bits()]).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= free {
        return Err(format!(
            "the data hold {} distinct allocations (N, k_e, k_c), not enough for {free} free parameters; add runs (other budgets or k_c) or hold some fixed with --fix NAME=VALUE",
            distinct.len()
        ));
    }
    let mut best: Option<Fit> = None;
    let mut last_err = String::from("the model gave no starting point");
    for start in model.initial_guesses(data) {
        if start.len() != specs.len() {
            return Err(format!("the model's starting point has {} values for {} parameters", start.len(), specs.len()));
        }
        match fit_from(model, data, fixed, start) {
            Ok(f) if best.as_ref().is_none_or(|b| f.rmse < b.rmse) => best = Some(f),
            Ok(_) => {}
            Err(e) => last_err = e,
        }
    }
    best.ok_or(last_err)
}

fn fit_from(model: &dyn TradeoffModel, data: &[Observation], fixed: &[(usize, f64)], mut theta: Vec<f64>) -> Result<Fit, String> {
    let specs = model.parameters();
    for &(i, v) in fixed {
        theta[i] = v;
    }
    let free: Vec<usize> = (0..specs.len()).filter(|i| !fixed.iter().any(|(j, _)| j == i)).collect();
    // Work in u-space: log for positive parameters.
    let to_u = |i: usize, v: f64| if specs[i].positive { v.ln() } else { v };
    let from_u = |i: usize, u: f64| if specs[i].positive { u.exp() } else { u };
    let mut u: Vec<f64> = free.iter().map(|&i| to_u(i, theta[i])).collect();
    let full = |u: &[f64], theta: &[f64]| {
        let mut t = theta.to_vec();
        for (k, &i) in free.iter().enumerate() {
            t[i] = from_u(i, u[k]);
        }
        t
    };
    let residuals = |t: &[f64]| -> Vec<f64> { data.iter().map(|o| o.metric - model.predict(t, o.n, o.k_e, o.k_c)).collect() };
    let ssr = |r: &[f64]| r.iter().map(|x| x * x).sum::<f64>();
    let jacobian = |u: &[f64]| -> Vec<Vec<f64>> {
        // d prediction / d u_k, central differences
        let mut j = vec![vec![0.0; free.len()]; data.len()];
        for k in 0..free.len() {
            let h = 1e-6 * (1.0 + u[k].abs());
            let (mut up, mut dn) = (u.to_vec(), u.to_vec());
            up[k] += h;
            dn[k] -= h;
            let (tp, td) = (full(&up, &theta), full(&dn, &theta));
            for (row, o) in data.iter().enumerate() {
                j[row][k] = (model.predict(&tp, o.n, o.k_e, o.k_c) - model.predict(&td, o.n, o.k_e, o.k_c)) / (2.0 * h);
            }
        }
        j
    };
    let normal = |j: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let p = free.len();
        (0..p).map(|a| (0..p).map(|b| j.iter().map(|row| row[a] * row[b]).sum()).collect()).collect()
    };
    let mut current = ssr(&residuals(&full(&u, &theta)));
    if !current.is_finite() {
        return Err("the model gives non-finite predictions at its starting point".into());
    }
    let mut lambda = 1e-3;
    let mut iterations = 0;
    for it in 0..500 {
        iterations = it + 1;
        let t = full(&u, &theta);
        let r = residuals(&t);
        let j = jacobian(&u);
        let jtj = normal(&j);
        let jtr: Vec<f64> = (0..free.len()).map(|a| j.iter().zip(&r).map(|(row, ri)| row[a] * ri).sum()).collect();
        let mut improved = false;
        for _ in 0..30 {
            let mut damped = jtj.clone();
            for (a, row) in damped.iter_mut().enumerate() {
                row[a] += lambda * (jtj[a][a].max(1e-12));
            }
            let Some(step) = solve(damped, jtr.clone()) else {
                lambda *= 10.0;
                continue;
            };
            let candidate: Vec<f64> = u.iter().zip(&step).map(|(a, b)| a + b).collect();
            let s = ssr(&residuals(&full(&candidate, &theta)));
            if s.is_finite() && s < current {
                u = candidate;
                current = s;
                lambda = (lambda / 3.0).max(1e-12);
                improved = true;
                break;
            }
            lambda *= 4.0;
        }
        if !improved || lambda > 1e12 {
            break;
        }
    }
    let jac = jacobian(&u);
    let theta = full(&u, &theta);
    let r = residuals(&theta);
    let n = data.len() as f64;
    let dof = (data.len() - free.len()) as f64;
    let sigma2 = ssr(&r) / dof;
    let mean = data.iter().map(|o| o.metric).sum::<f64>() / n;
    let sst: f64 = data.iter().map(|o| (o.metric - mean).powi(2)).sum();
    let mut std_err = vec![0.0; specs.len()];
    let cov = inverse(&normal(&jac));
    for (k, &i) in free.iter().enumerate() {
        let var_u = cov.as_ref().map_or(f64::NAN, |c| c[k][k] * sigma2);
        let se_u = if var_u.is_finite() && var_u >= 0.0 { var_u.sqrt() } else { f64::NAN };
        // delta method back to the parameter's own scale
        std_err[i] = if specs[i].positive { theta[i] * se_u } else { se_u };
    }
    Ok(Fit { theta, std_err, rmse: (ssr(&r) / n).sqrt(), r_squared: if sst > 0.0 { 1.0 - ssr(&r) / sst } else { f64::NAN }, points: data.len(), iterations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tradeoff::ParamSpec;

    /// y = a · exp(−b·n) + c: a closed-form check that the fitter finds exact parameters.
    struct Decay;
    static DECAY: [ParamSpec; 3] = [
        ParamSpec { name: "a", doc: "", positive: false },
        ParamSpec { name: "b", doc: "", positive: true },
        ParamSpec { name: "c", doc: "", positive: false },
    ];
    impl TradeoffModel for Decay {
        fn parameters(&self) -> &'static [ParamSpec] {
            &DECAY
        }
        fn initial_guesses(&self, _: &[Observation]) -> Vec<Vec<f64>> {
            vec![vec![1.0, 0.1, 0.0]]
        }
        fn predict(&self, t: &[f64], n: f64, _: f64, _: f64) -> f64 {
            t[0] * (-t[1] * n).exp() + t[2]
        }
        fn score(&self, t: &[f64], n: f64, k_e: f64, k_c: f64) -> f64 {
            -self.predict(t, n, k_e, k_c)
        }
        fn formula(&self) -> &'static str {
            "a exp(-b n) + c"
        }
    }

    #[test]
    fn exact_data_gives_exact_parameters_and_zero_error() {
        let data: Vec<Observation> = (0..12).map(|i| Observation { n: i as f64, k_e: 1.0, k_c: 1.0, metric: 3.0 * (-0.4 * i as f64).exp() + 0.5 }).collect();
        let f = fit(&Decay, &data, &[]).unwrap();
        for (got, want) in f.theta.iter().zip([3.0, 0.4, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{:?}", f.theta);
        }
        assert!(f.rmse < 1e-8 && (f.r_squared - 1.0).abs() < 1e-10);
    }

    #[test]
    fn standard_errors_match_the_linear_closed_form() {
        // With b held fixed the model is linear in (a, c): the standard errors must equal
        // sqrt(diag((XᵀX)⁻¹)·σ²) computed directly.
        let b = 0.3;
        let noise = [0.03, -0.02, 0.01, 0.04, -0.05, 0.0, 0.02, -0.01, -0.03, 0.05];
        let data: Vec<Observation> = (0..10).map(|i| Observation { n: i as f64, k_e: 1.0, k_c: 1.0, metric: 2.0 * (-b * i as f64).exp() + 1.0 + noise[i] }).collect();
        let f = fit(&Decay, &data, &[(1, b)]).unwrap();
        let x: Vec<[f64; 2]> = data.iter().map(|o| [(-b * o.n).exp(), 1.0]).collect();
        let xtx = [[x.iter().map(|r| r[0] * r[0]).sum::<f64>(), x.iter().map(|r| r[0]).sum()], [x.iter().map(|r| r[0]).sum(), 10.0]];
        let det = xtx[0][0] * xtx[1][1] - xtx[0][1] * xtx[1][0];
        let ssr: f64 = data.iter().map(|o| (o.metric - Decay.predict(&f.theta, o.n, 0.0, 0.0)).powi(2)).sum();
        let s2 = ssr / 8.0;
        let se_a = (xtx[1][1] / det * s2).sqrt();
        let se_c = (xtx[0][0] / det * s2).sqrt();
        assert!((f.std_err[0] - se_a).abs() < 1e-6 * se_a.max(1.0), "{} vs {se_a}", f.std_err[0]);
        assert!((f.std_err[2] - se_c).abs() < 1e-6 * se_c.max(1.0), "{} vs {se_c}", f.std_err[2]);
        assert_eq!(f.std_err[1], 0.0);
    }

    #[test]
    fn too_few_points_are_refused() {
        // Ten runs, but only three distinct allocations, for three parameters.
        let data: Vec<Observation> = (0..10).map(|i| Observation { n: (i % 3) as f64, k_e: 1.0, k_c: 1.0, metric: i as f64 }).collect();
        let err = fit(&Decay, &data, &[]).unwrap_err();
        assert!(err.contains("3 distinct allocations") && err.contains("3 free parameters"), "{err}");
        assert!(fit(&Decay, &data, &[(0, 1.0)]).is_ok());
    }
}
