//! The time spent in each fused CPU layer's forward and backward passes, summed over the
//! process, for `elmlab bench`'s account of where a training step goes.

use std::sync::Mutex;
use std::time::Instant;

/// `(layer and pass, seconds)` in the order first seen.
static SPENT: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

/// Runs `pass` and adds its wall time to `label` (e.g. `hidden forward`).
pub fn timed<R>(label: impl FnOnce() -> String, pass: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let out = pass();
    let seconds = started.elapsed().as_secs_f64();
    let label = label();
    // a poisoned lock only means another thread panicked while adding: the sums stay usable
    let mut spent = SPENT.lock().unwrap_or_else(|e| e.into_inner());
    match spent.iter_mut().find(|(l, _)| *l == label) {
        Some((_, s)) => *s += seconds,
        None => spent.push((label, seconds)),
    }
    out
}

/// Every label's total seconds so far.
pub fn time_spent() -> Vec<(String, f64)> {
    SPENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_add_up_under_their_label() {
        let before = |label: &str| time_spent().into_iter().find(|(l, _)| l == label).map_or(0.0, |(_, s)| s);
        let (a0, b0) = (before("timing test a"), before("timing test b"));
        let pause = std::time::Duration::from_millis(5);
        assert_eq!(timed(|| "timing test a".into(), || { std::thread::sleep(pause); 7 }), 7);
        timed(|| "timing test a".into(), || std::thread::sleep(pause));
        timed(|| "timing test b".into(), || ());
        let (a, b) = (before("timing test a") - a0, before("timing test b") - b0);
        assert!(a >= 0.010 && a < 1.0, "two 5 ms passes took {a} s");
        assert!(b < 0.005, "an empty pass took {b} s");
    }
}
