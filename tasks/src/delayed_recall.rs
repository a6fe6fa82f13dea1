//! Delayed recall: a class cue is shown for a few steps, then a delay filled with noise,
//! then a recall marker; the class is read from the last step's logits. It needs memory
//! over the delay (the difficulty knob) and is fully synthetic, so it runs anywhere.

use elmlab_core::error::PluginError;
use elmlab_core::registry::{TaskEntry, TaskPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use elmlab_core::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Split, Task, TaskContext};
use rand::Rng;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct DelayedRecallSettings {
    /// number of cue classes
    #[setting(default = 8, min = 2)]
    pub classes: usize,
    /// steps the cue is shown
    #[setting(default = 5, min = 1)]
    pub cue_steps: usize,
    /// steps between the cue and the recall marker
    #[setting(default = 40, min = 0)]
    pub delay: usize,
    /// extra channels carrying only noise
    #[setting(default = 8, min = 0)]
    pub noise_channels: usize,
    /// probability of a spurious spike per channel and step
    #[setting(default = 0.1, min = 0.0, max = 1.0)]
    pub noise_rate: f64,
    /// fixed validation batches
    #[setting(default = 8, min = 1)]
    pub valid_batches: usize,
    /// fixed test batches
    #[setting(default = 8, min = 1)]
    pub test_batches: usize,
}

impl TaskPlugin for DelayedRecallSettings {
    const NAME: &'static str = "delayed_recall";
    const DOC: &'static str = "remember a cued class over a noisy delay; read at the last step (synthetic)";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        Ok(Box::new(DelayedRecall { s: self, seed: ctx.seed }))
    }
}

elmlab_core::inventory::submit! { TaskEntry::of::<DelayedRecallSettings>() }

#[derive(Clone, Debug)]
pub struct DelayedRecall {
    pub s: DelayedRecallSettings,
    pub seed: u64,
}

impl DelayedRecall {
    /// Channel of the recall marker; cue channels are `0..classes`, noise channels follow the marker.
    fn marker(&self) -> usize {
        self.s.classes
    }

    fn sample(&self, rng: &mut impl Rng, batch: usize) -> Batch {
        let (w, steps) = (self.input_width(), self.sequence_length());
        let mut inputs = vec![0.0f32; steps * batch * w];
        let mut targets = Vec::with_capacity(batch);
        for b in 0..batch {
            let y = rng.gen_range(0..self.s.classes);
            targets.push(y);
            for t in 0..steps {
                let row = &mut inputs[(t * batch + b) * w..(t * batch + b + 1) * w];
                for v in row.iter_mut() {
                    if rng.gen::<f64>() < self.s.noise_rate {
                        *v = 1.0;
                    }
                }
                row[self.marker()] = 0.0;
                if t < self.s.cue_steps {
                    row[y] = 1.0;
                }
                if t == steps - 1 {
                    row[self.marker()] = 1.0;
                }
            }
        }
        Batch { steps, batch, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh }
    }
}

impl Task for DelayedRecall {
    fn input_width(&self) -> usize {
        self.s.classes + 1 + self.s.noise_channels
    }
    fn classes(&self) -> usize {
        self.s.classes
    }
    fn sequence_length(&self) -> usize {
        self.s.cue_steps + self.s.delay + 1
    }
    fn loss_at(&self) -> LossAt {
        LossAt::LastStep
    }
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        Ok(self.sample(&mut stream(self.seed, "delayed_recall/train", step), batch))
    }
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        let (purpose, n) = match split {
            Split::Train => ("delayed_recall/train-eval", self.s.valid_batches),
            Split::Valid => ("delayed_recall/valid", self.s.valid_batches),
            Split::Test => ("delayed_recall/test", self.s.test_batches),
        };
        Ok(Box::new((0..n as u64).map(move |i| Ok(self.sample(&mut stream(self.seed, purpose, i), batch)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::registry::Registry;
    use elmlab_core::settings::default_settings;
    use elmlab_core::task::validate_batch;

    fn task() -> Box<dyn Task> {
        let e = Registry::builtin().tasks.get("delayed_recall").unwrap();
        (e.build)(&default_settings(e.fields), &TaskContext { seed: 3 }).unwrap()
    }

    #[test]
    fn batches_have_the_declared_layout() {
        let t = task();
        assert_eq!((t.input_width(), t.classes(), t.sequence_length()), (17, 8, 46));
        let b = t.train_batch(0, 4).unwrap();
        validate_batch(t.as_ref(), &b).unwrap();
        let Inputs::Dense(x) = &b.inputs else { panic!() };
        for (s, &y) in b.targets.iter().enumerate() {
            // the cue channel is on for the first cue steps, the marker only at the end
            for step in 0..5 {
                assert_eq!(x[(step * 4 + s) * 17 + y], 1.0);
            }
            for step in 0..46 {
                assert_eq!(x[(step * 4 + s) * 17 + 8], if step == 45 { 1.0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn training_batches_depend_on_step_and_eval_sets_are_fixed() {
        let t = task();
        assert_eq!(t.train_batch(5, 3).unwrap(), t.train_batch(5, 3).unwrap());
        assert_ne!(t.train_batch(5, 3).unwrap(), t.train_batch(6, 3).unwrap());
        let eval = |split| elmlab_core::task::collect_eval(t.as_ref(), split, 4).unwrap();
        assert_eq!(eval(Split::Valid), eval(Split::Valid));
        assert_ne!(eval(Split::Valid), eval(Split::Test));
        assert_eq!(eval(Split::Test).len(), 8);
    }

    #[test]
    fn conforms() {
        elmlab_core::conformance::check_entry_fields(Registry::builtin().tasks.get("delayed_recall").unwrap());
        elmlab_core::conformance::check_task(task().as_ref());
    }

    #[test]
    fn labels_cover_the_classes() {
        let t = task();
        let mut seen = [0usize; 8];
        for s in 0..50 {
            for y in t.train_batch(s, 16).unwrap().targets {
                seen[y] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
