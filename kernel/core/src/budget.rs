//! Equal-budget sizing: the largest width whose parameter count fits a budget.

use thiserror::Error;

/// A budget no network of the model fits.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("budget {budget} is below the smallest network: 1 unit already needs {smallest} parameters")]
    BelowSmallest { budget: usize, smallest: usize },
    #[error("budget {budget} is larger than any network the model can build")]
    AboveLargest { budget: usize },
}

/// The largest `n >= 1` with `count(n) <= budget`, for a `count` that grows with `n`.
pub fn largest_fitting(budget: usize, count: impl Fn(usize) -> usize) -> Result<usize, BudgetError> {
    let smallest = count(1);
    if smallest > budget {
        return Err(BudgetError::BelowSmallest { budget, smallest });
    }
    // Grow an upper bound, then bisect: count(lo) <= budget < count(hi).
    let (mut lo, mut hi) = (1usize, 2usize);
    while count(hi) <= budget {
        lo = hi;
        hi = hi.checked_mul(2).filter(|&h| h <= 1 << 40).ok_or(BudgetError::AboveLargest { budget })?;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if count(mid) <= budget { lo = mid } else { hi = mid }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_largest_width_for_a_quadratic_count() {
        let count = |n: usize| 4 * n * (10 + n + 2) + 5 * (n + 1);
        for budget in [100usize, 1_000, 77_310, 1_000_000] {
            let n = largest_fitting(budget, count).unwrap();
            assert!(count(n) <= budget && count(n + 1) > budget, "budget {budget}: n={n}");
        }
    }

    #[test]
    fn refuses_a_budget_below_one_unit() {
        let err = largest_fitting(10, |n| 100 * n).unwrap_err().to_string();
        assert!(err.contains("budget 10") && err.contains("100"), "{err}");
    }
}
