//! Fixed timescales spread over units or memory dimensions.

/// `n` timescales from `lo` to `hi` inclusive, geometrically spaced (one unit gets `lo`).
pub fn log_spaced(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timescales_are_log_spaced_inclusive() {
        let t = log_spaced(1.0, 100.0, 3);
        assert!((t[0] - 1.0).abs() < 1e-12 && (t[1] - 10.0).abs() < 1e-9 && (t[2] - 100.0).abs() < 1e-9);
        assert_eq!(log_spaced(2.0, 9.0, 1), vec![2.0]);
    }
}
