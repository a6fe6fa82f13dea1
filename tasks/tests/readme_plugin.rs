//! The plugin example of the README, compiled and checked: it registers, and it passes
//! the conformance checks. Keep it equal to the README's code block.

use elmlab_core::error::PluginError;
use elmlab_core::registry::{TaskEntry, TaskPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use elmlab_core::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Split, Task, TaskContext};
use rand::Rng;

/// The settings, declared once: `elmlab list` and config checking read them from here.
#[derive(Settings, Clone, Debug)]
pub struct ParitySettings {
    /// sequence length
    #[setting(default = 20, min = 1)]
    pub length: usize,
}

impl TaskPlugin for ParitySettings {
    const NAME: &'static str = "parity";
    const DOC: &'static str = "parity of a random bit string, read at the last step";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        Ok(Box::new(Parity { length: self.length, seed: ctx.seed }))
    }
}

elmlab_core::inventory::submit! { TaskEntry::of::<ParitySettings>() }

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

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::conformance::{check_entry_fields, check_task};
    use elmlab_core::settings::DeclaredSettings;

    #[test]
    fn conforms() {
        check_entry_fields(&TaskEntry::of::<ParitySettings>());
        check_task(ParitySettings::defaults().unwrap().build(&TaskContext { seed: 1 }).unwrap().as_ref());
    }
}

#[test]
fn the_readme_task_registers_and_passes_the_checks() {
    let registry = elmlab_core::registry::Registry::builtin();
    let entry = registry.tasks.get("parity").unwrap();
    let task = (entry.build)(&elmlab_core::settings::default_settings(entry.fields), &TaskContext { seed: 1 }).unwrap();
    elmlab_core::conformance::check_task(task.as_ref());
    assert_eq!(elmlab_core::task::collect_eval(task.as_ref(), Split::Test, 4).unwrap().len(), 10);
}

/// The README's example is this file's code, letter for letter: a change to one that
/// is not made to the other fails here.
#[test]
fn the_readme_shows_this_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find("### Compiled in").expect("the README's plugin section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let this = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readme_plugin.rs")).unwrap();
    assert!(this.contains(block), "the README's plugin example differs from tasks/tests/readme_plugin.rs");
}
