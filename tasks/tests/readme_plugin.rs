//! The plugin example of the README, compiled and checked: it registers, and its
//! batches pass the kernel's checks. Keep it equal to the README's code block.

use elmlab_kernel::error::PluginError;
use elmlab_kernel::registry::TaskEntry;
use elmlab_kernel::rng::stream;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use elmlab_kernel::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Split, Task, TaskContext};
use rand::Rng;

static FIELDS: &[F] = &[F::new("length", K::Int { min: 1 }, D::Int(20), "sequence length")];

fn build(s: &Settings, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
    Ok(Box::new(Parity { length: s.usize("length"), seed: ctx.seed }))
}

elmlab_kernel::inventory::submit! {
    TaskEntry { name: "parity", doc: "parity of a random bit string, read at the last step", fields: FIELDS, build }
}

struct Parity { length: usize, seed: u64 }

impl Parity {
    fn draw(&self, rng: &mut impl Rng, batch: usize) -> Batch {
        let bits: Vec<u32> = (0..self.length * batch).map(|_| rng.gen_range(0..2)).collect();
        let targets = (0..batch).map(|b| (0..self.length).map(|t| bits[t * batch + b] as usize).sum::<usize>() % 2).collect();
        Batch { steps: self.length, batch, inputs: Inputs::OneHot { symbols: bits, scale: 1.0 }, targets, carry: Carry::Fresh }
    }
}

impl Task for Parity {
    fn input_width(&self) -> usize { 2 }
    fn classes(&self) -> usize { 2 }
    fn sequence_length(&self) -> usize { self.length }
    fn loss_at(&self) -> LossAt { LossAt::LastStep }
    // Batches depend only on settings, seed and step: that is what makes resume exact.
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        Ok(self.draw(&mut stream(self.seed, "parity/train", step), batch))
    }
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        let purpose = format!("parity/{split}");
        Ok(Box::new((0..10).map(move |i| Ok(self.draw(&mut stream(self.seed, &purpose, i), batch)))))
    }
}

#[test]
fn the_readme_task_registers_and_its_batches_are_valid() {
    let registry = elmlab_kernel::registry::Registry::builtin();
    let entry = registry.tasks.get("parity").unwrap();
    let task = (entry.build)(&elmlab_kernel::schema::default_settings(entry.fields), &TaskContext { seed: 1 }).unwrap();
    let b = task.train_batch(0, 4).unwrap();
    elmlab_kernel::task::validate_batch(task.as_ref(), &b).unwrap();
    assert_eq!(elmlab_kernel::task::collect_eval(task.as_ref(), Split::Test, 4).unwrap().len(), 10);
}
