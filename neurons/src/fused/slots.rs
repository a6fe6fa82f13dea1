//! Where step `t` lies in a buffer of per-step blocks: a pass that a backward pass follows
//! keeps every step (step `t` in block `t`); a pass that none follows (evaluation) keeps the
//! two that a step reads and writes, step `t` in block `t % 2`.

/// The blocks of one per-step buffer of a pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepSlots {
    two: bool,
}

impl StepSlots {
    /// Every step (`all_steps`), or two.
    pub fn new(all_steps: bool) -> Self {
        StepSlots { two: !all_steps }
    }

    /// How many blocks a buffer holds whose whole history would be `len` steps.
    pub fn count(self, len: usize) -> usize {
        if self.two {
            len.min(2)
        } else {
            len
        }
    }

    /// The block of step `t`, while the pass runs.
    #[inline(always)]
    pub fn of(self, t: usize) -> usize {
        if self.two {
            t % 2
        } else {
            t
        }
    }

    /// The block of step `t` of a history of `len` steps, read after the pass: with two
    /// blocks only the last two steps are there (anything earlier is refused, not stale).
    pub fn after(self, t: usize, len: usize) -> usize {
        assert!(!self.two || t + 2 >= len, "the pass kept its last two steps only (asked for step {t} of {len})");
        self.of(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_or_the_last_two() {
        let (all, two) = (StepSlots::new(true), StepSlots::new(false));
        assert_eq!((all.count(5), two.count(5), two.count(1)), (5, 2, 1));
        assert_eq!((0..5).map(|t| all.of(t)).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!((0..5).map(|t| two.of(t)).collect::<Vec<_>>(), [0, 1, 0, 1, 0]);
        assert_eq!((two.after(3, 5), two.after(4, 5), all.after(0, 5)), (1, 0, 0));
        assert!(std::panic::catch_unwind(|| two.after(2, 5)).is_err(), "an overwritten step");
    }
}
