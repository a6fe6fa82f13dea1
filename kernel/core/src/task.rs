//! The task contract: data, batches, where the loss reads, and how runs are compared.

use crate::error::{BatchError, PluginError};

/// Which time steps the loss and the metrics read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LossAt {
    /// Only the last step (classification of a whole sequence).
    LastStep,
    /// Every step (sequence prediction, language modelling).
    EveryStep,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "valid" | "validation" => Ok(Split::Valid),
            "test" => Ok(Split::Test),
            _ => Err(format!("unknown split `{s}`; valid: train, valid, test")),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        })
    }
}

/// Encoded inputs of a batch, time-major: step `t`, sequence `b`.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// `[steps][batch][width]` values (spikes as 0/1, rates, ...).
    Dense(Vec<f32>),
    /// `[steps][batch]` symbols, fed as one-hot vectors times `scale`.
    OneHot { symbols: Vec<u32>, scale: f32 },
}

/// Where a batch's recurrent state starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Carry {
    /// From zero (independent sequences).
    Fresh,
    /// From the state the previous batch ended in (truncated backpropagation through
    /// time: no gradient flows back into the previous batch); sequence `b` starts from
    /// zero instead where `reset[b]` is true. The first batch of a run starts from zero.
    Continue { reset: Vec<bool> },
}

/// A batch of sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub steps: usize,
    pub batch: usize,
    pub inputs: Inputs,
    /// Class per read step: `[batch]` for [`LossAt::LastStep`], `[steps][batch]` for
    /// [`LossAt::EveryStep`].
    pub targets: Vec<usize>,
    pub carry: Carry,
}

/// Evaluation batches, produced one at a time so that memory does not grow with the
/// length of a split.
pub type EvalBatches<'a> = Box<dyn Iterator<Item = Result<Batch, PluginError>> + 'a>;

/// All evaluation batches of a split, collected (for tests and small splits).
pub fn collect_eval(task: &dyn Task, split: Split, batch: usize) -> Result<Vec<Batch>, PluginError> {
    task.eval_batches(split, batch)?.collect()
}

/// The metric a task selects models by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// One of the trainer's metric names: `accuracy`, `loss`, `bits_per_byte`.
    pub metric: &'static str,
    pub higher_is_better: bool,
}

/// What a task is built with besides its own settings.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// The experiment's seed; fixed evaluation sets derive from it.
    pub seed: u64,
}

/// What a network must read and produce for a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataShape {
    /// Width of the encoded input per step (`D_in`).
    pub input_width: usize,
    /// Classes of the output (`C`).
    pub classes: usize,
}

/// A configured task.
pub trait Task: Send + Sync {
    /// Width of the encoded input per step (`D_in`).
    fn input_width(&self) -> usize;
    /// Number of classes (vocabulary size for language modelling).
    fn classes(&self) -> usize;
    /// Steps per training sequence (for FLOP and throughput reports).
    fn sequence_length(&self) -> usize;
    fn loss_at(&self) -> LossAt;
    /// The training batch of `step`. It must depend only on the task's settings, the
    /// seed and `step`: that is what makes resumed runs continue exactly.
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError>;
    /// The fixed evaluation batches of a split (the same at every evaluation), in order.
    fn eval_batches(&self, split: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError>;
    /// The metrics the trainer reports for this task besides loss and accuracy
    /// (`bits_per_byte` for language modelling).
    fn extra_metrics(&self) -> &'static [&'static str] {
        &[]
    }
    /// Loads or checks the task's data, so that a missing file is reported before a run
    /// directory is created. Tasks with nothing to load keep the default.
    fn check_data(&self) -> Result<(), PluginError> {
        Ok(())
    }
    /// The metric model selection uses.
    fn selection(&self) -> Selection {
        Selection { metric: "accuracy", higher_is_better: true }
    }
    /// Input width and classes together: what sizes a network.
    fn data_shape(&self) -> DataShape {
        DataShape { input_width: self.input_width(), classes: self.classes() }
    }
}

/// Checks a batch a task produced against what the task declares; the kernel refuses
/// malformed batches with a message instead of panicking inside a tensor op.
pub fn validate_batch(task: &dyn Task, b: &Batch) -> Result<(), BatchError> {
    let width = task.input_width();
    if b.steps == 0 || b.batch == 0 {
        return Err(BatchError::Empty { steps: b.steps, batch: b.batch });
    }
    let input_len_ok = match &b.inputs {
        Inputs::Dense(v) => v.len() == b.steps * b.batch * width,
        Inputs::OneHot { symbols, .. } => {
            if let Some(&symbol) = symbols.iter().find(|&&s| s as usize >= width) {
                return Err(BatchError::Symbol { symbol, width });
            }
            symbols.len() == b.steps * b.batch
        }
    };
    if !input_len_ok {
        return Err(BatchError::Inputs { steps: b.steps, batch: b.batch, width });
    }
    let expected = match task.loss_at() {
        LossAt::LastStep => b.batch,
        LossAt::EveryStep => b.steps * b.batch,
    };
    if b.targets.len() != expected {
        return Err(BatchError::Targets { got: b.targets.len(), expected });
    }
    if let Some(&target) = b.targets.iter().find(|&&t| t >= task.classes()) {
        return Err(BatchError::Target { target, classes: task.classes() });
    }
    if let Carry::Continue { reset } = &b.carry {
        if reset.len() != b.batch {
            return Err(BatchError::Resets { flags: reset.len(), batch: b.batch });
        }
    }
    Ok(())
}
