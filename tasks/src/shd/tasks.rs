//! The task plugins `shd_adding` and `shd`.

use super::data::CHANNELS;
use super::{paint, DataSource, LazyPools, Pools, ShdData};
use crate::shd::data::BinnedSample;
use elmlab_core::error::PluginError;
use elmlab_core::registry::{TaskEntry, TaskPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use elmlab_core::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Split, Task, TaskContext};
use rand::Rng;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ShdAddingSettings {
    #[setting(flatten)]
    pub data: ShdData,
    /// fixed validation batches (pairs from the validation pool)
    #[setting(default = 500, min = 1)]
    pub valid_batches: usize,
    /// fixed test batches (pairs from the test file)
    #[setting(default = 2000, min = 1)]
    pub test_batches: usize,
}

impl TaskPlugin for ShdAddingSettings {
    const NAME: &'static str = "shd_adding";
    const DOC: &'static str = "SHD-Adding: two spoken digits joined in time; class (y1 mod 10)+(y2 mod 10), 19 classes, read at the last step";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        Ok(Box::new(ShdAdding { data: LazyPools::new(DataSource::new(&self.data, ctx.seed)?), valid_batches: self.valid_batches, test_batches: self.test_batches }))
    }
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ShdSettings {
    #[setting(flatten)]
    pub data: ShdData,
}

impl TaskPlugin for ShdSettings {
    const NAME: &'static str = "shd";
    const DOC: &'static str = "SHD: classify one spoken digit (20 classes: 10 English, 10 German), read at the last step";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        Ok(Box::new(ShdDigits { data: LazyPools::new(DataSource::new(&self.data, ctx.seed)?) }))
    }
}

elmlab_core::inventory::submit! { TaskEntry::of::<ShdAddingSettings>() }
elmlab_core::inventory::submit! { TaskEntry::of::<ShdSettings>() }

fn pool(pools: &Pools, split: Split) -> &[BinnedSample] {
    match split {
        Split::Train => &pools.train,
        Split::Valid => &pools.valid,
        Split::Test => &pools.test,
    }
}

/// The label of a pair: `(y1 mod 10) + (y2 mod 10)`, so English and German digits add alike.
pub fn pair_label(y1: u8, y2: u8) -> usize {
    (y1 % 10) as usize + (y2 % 10) as usize
}

pub struct ShdAdding {
    data: LazyPools,
    valid_batches: usize,
    test_batches: usize,
}

impl ShdAdding {
    /// A batch of pairs drawn uniformly with replacement from `split`'s pool.
    fn pairs(&self, split: Split, rng: &mut impl Rng, batch: usize) -> Result<Batch, PluginError> {
        let samples = pool(self.data.get()?, split);
        let digit = self.data.source().bins();
        let steps = 2 * digit;
        let mut inputs = vec![0.0f32; steps * batch * CHANNELS];
        let mut targets = Vec::with_capacity(batch);
        for b in 0..batch {
            let (first, second) = (&samples[rng.gen_range(0..samples.len())], &samples[rng.gen_range(0..samples.len())]);
            paint(&mut inputs, first, 0, b, batch);
            paint(&mut inputs, second, digit, b, batch);
            targets.push(pair_label(first.label, second.label));
        }
        Ok(Batch { steps, batch, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh })
    }
}

impl Task for ShdAdding {
    fn input_width(&self) -> usize {
        CHANNELS
    }
    fn classes(&self) -> usize {
        19
    }
    fn sequence_length(&self) -> usize {
        2 * self.data.source().bins()
    }
    fn loss_at(&self) -> LossAt {
        LossAt::LastStep
    }
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        self.pairs(Split::Train, &mut stream(self.data.source().seed, "shd_adding/train", step), batch)
    }
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        self.data.get()?;
        let n = if split == Split::Test { self.test_batches } else { self.valid_batches };
        let purpose = format!("shd_adding/{split}");
        Ok(Box::new((0..n as u64).map(move |i| self.pairs(split, &mut stream(self.data.source().seed, &purpose, i), batch))))
    }
    fn check_data(&self) -> Result<(), PluginError> {
        self.data.get().map(|_| ())
    }
}

pub struct ShdDigits {
    data: LazyPools,
}

impl ShdDigits {
    fn samples(&self, chosen: &[&BinnedSample]) -> Batch {
        let (steps, batch) = (self.data.source().bins(), chosen.len());
        let mut inputs = vec![0.0f32; steps * batch * CHANNELS];
        for (b, s) in chosen.iter().enumerate() {
            paint(&mut inputs, s, 0, b, batch);
        }
        Batch { steps, batch, inputs: Inputs::Dense(inputs), targets: chosen.iter().map(|s| s.label as usize).collect(), carry: Carry::Fresh }
    }
}

impl Task for ShdDigits {
    fn input_width(&self) -> usize {
        CHANNELS
    }
    fn classes(&self) -> usize {
        20
    }
    fn sequence_length(&self) -> usize {
        self.data.source().bins()
    }
    fn loss_at(&self) -> LossAt {
        LossAt::LastStep
    }
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        let pool = &self.data.get()?.train;
        let mut rng = stream(self.data.source().seed, "shd/train", step);
        let chosen: Vec<&BinnedSample> = (0..batch).map(|_| &pool[rng.gen_range(0..pool.len())]).collect();
        Ok(self.samples(&chosen))
    }
    fn check_data(&self) -> Result<(), PluginError> {
        self.data.get().map(|_| ())
    }
    /// Every sample of the split once, in file order.
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        let samples = pool(self.data.get()?, split);
        Ok(Box::new(samples.chunks(batch).map(|c| Ok(self.samples(&c.iter().collect::<Vec<_>>())))))
    }
}
