//! The copy-memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): `length`
//! random symbols, a delay of blanks ending in a marker, then the model must output the
//! symbols in order while seeing blanks. It is read at every step: blanks everywhere
//! except the last `length` steps, which carry the symbols.
//!
//! Input symbols: 0 blank, `1..=alphabet` data symbols, `alphabet + 1` marker.
//! Target classes: 0 blank, `1..=alphabet` data symbols.

use elmlab_core::error::PluginError;
use elmlab_core::registry::{TaskEntry, TaskPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use elmlab_core::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Selection, Split, Task, TaskContext};
use rand::Rng;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct CopyMemorySettings {
    /// data symbols to copy from
    #[setting(default = 8, min = 1)]
    pub alphabet: usize,
    /// symbols to remember
    #[setting(default = 10, min = 1)]
    pub length: usize,
    /// steps between the last symbol and the end of the marker step
    #[setting(default = 20, min = 1)]
    pub delay: usize,
    /// fixed validation batches
    #[setting(default = 4, min = 1)]
    pub valid_batches: usize,
    /// fixed test batches
    #[setting(default = 4, min = 1)]
    pub test_batches: usize,
}

impl TaskPlugin for CopyMemorySettings {
    const NAME: &'static str = "copy_memory";
    const DOC: &'static str = "reproduce a symbol string after a delay; read at every step (example plugin, synthetic)";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        let task = CopyMemory { s: self, seed: ctx.seed };
        elmlab_core::tracing::info!(
            "copy_memory: {} symbols of {} over a delay of {}; predicting blanks and guessing the symbols scores loss {:.4}",
            task.s.length,
            task.s.alphabet,
            task.s.delay,
            task.memoryless_loss()
        );
        Ok(Box::new(task))
    }
}

elmlab_core::inventory::submit! { TaskEntry::of::<CopyMemorySettings>() }

#[derive(Clone, Debug)]
pub struct CopyMemory {
    pub s: CopyMemorySettings,
    pub seed: u64,
}

impl CopyMemory {
    fn marker(&self) -> u32 {
        self.s.alphabet as u32 + 1
    }

    /// Mean cross-entropy (nats per step) of the best model without memory: certain of
    /// the blanks, uniform over the alphabet where symbols are due.
    pub fn memoryless_loss(&self) -> f64 {
        self.s.length as f64 * (self.s.alphabet as f64).ln() / self.sequence_length() as f64
    }

    fn sample(&self, rng: &mut impl Rng, batch: usize) -> Batch {
        let steps = self.sequence_length();
        let recall_from = self.s.length + self.s.delay;
        let mut symbols = vec![0u32; steps * batch];
        let mut targets = vec![0usize; steps * batch];
        for b in 0..batch {
            for i in 0..self.s.length {
                let s = rng.gen_range(1..=self.s.alphabet);
                symbols[i * batch + b] = s as u32;
                targets[(recall_from + i) * batch + b] = s;
            }
            symbols[(recall_from - 1) * batch + b] = self.marker();
        }
        Batch { steps, batch, inputs: Inputs::OneHot { symbols, scale: 1.0 }, targets, carry: Carry::Fresh }
    }
}

impl Task for CopyMemory {
    fn input_width(&self) -> usize {
        self.s.alphabet + 2
    }
    fn classes(&self) -> usize {
        self.s.alphabet + 1
    }
    fn sequence_length(&self) -> usize {
        2 * self.s.length + self.s.delay
    }
    fn loss_at(&self) -> LossAt {
        LossAt::EveryStep
    }
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        Ok(self.sample(&mut stream(self.seed, "copy_memory/train", step), batch))
    }
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        let (purpose, n) = match split {
            Split::Train => ("copy_memory/train-eval", self.s.valid_batches),
            Split::Valid => ("copy_memory/valid", self.s.valid_batches),
            Split::Test => ("copy_memory/test", self.s.test_batches),
        };
        elmlab_core::tracing::debug!("copy_memory: {n} fixed {split} batches of {batch}");
        Ok(Box::new((0..n as u64).map(move |i| Ok(self.sample(&mut stream(self.seed, purpose, i), batch)))))
    }
    fn selection(&self) -> Selection {
        // Accuracy is dominated by the blanks; the loss shows whether symbols are recalled.
        Selection { metric: "loss", higher_is_better: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::task::validate_batch;

    fn task() -> CopyMemory {
        CopyMemory { s: CopyMemorySettings { alphabet: 4, length: 3, delay: 5, valid_batches: 2, test_batches: 3 }, seed: 7 }
    }

    #[test]
    fn conforms() {
        elmlab_core::conformance::check_entry_fields(&TaskEntry::of::<CopyMemorySettings>());
        elmlab_core::conformance::check_task(&task());
    }

    #[test]
    fn symbols_reappear_as_targets_after_the_marker() {
        let t = task();
        assert_eq!((t.input_width(), t.classes(), t.sequence_length()), (6, 5, 11));
        let b = t.train_batch(0, 3).unwrap();
        validate_batch(&t, &b).unwrap();
        let Inputs::OneHot { symbols, .. } = &b.inputs else { panic!("one-hot inputs") };
        for s in 0..3 {
            let at = |v: &[u32], step: usize| v[step * 3 + s];
            let target = |step: usize| b.targets[step * 3 + s];
            for i in 0..3 {
                assert!((1..=4).contains(&at(symbols, i)));
                assert_eq!(target(8 + i) as u32, at(symbols, i), "sequence {s}, symbol {i}");
            }
            for step in 3..11 {
                assert_eq!(at(symbols, step), if step == 7 { 5 } else { 0 }, "input at step {step}");
            }
            assert!((0..8).all(|step| target(step) == 0));
        }
    }

    #[test]
    fn batches_depend_on_seed_and_step_and_eval_sets_are_fixed() {
        let t = task();
        assert_eq!(t.train_batch(4, 2).unwrap(), t.train_batch(4, 2).unwrap());
        assert_ne!(t.train_batch(4, 2).unwrap(), t.train_batch(5, 2).unwrap());
        let eval = |split| elmlab_core::task::collect_eval(&t, split, 2).unwrap();
        assert_eq!(eval(Split::Test).len(), 3);
        assert_ne!(eval(Split::Valid), eval(Split::Test));
    }

    #[test]
    fn memoryless_loss_is_the_entropy_of_the_symbols_spread_over_the_sequence() {
        // 3 of 11 steps carry a uniform choice among 4 symbols.
        assert!((task().memoryless_loss() - 3.0 * 4f64.ln() / 11.0).abs() < 1e-12);
    }
}
