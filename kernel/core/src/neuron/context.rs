//! What the layers of one forward pass share: training or evaluation, the pass's
//! randomness, the penalties they add, and the recorder of internal states.

use crate::tensor::{Traced, TracedScalar};
use rand_chacha::ChaCha8Rng;

/// Per-forward-pass context shared by the layers.
pub struct ForwardContext {
    /// Training (dropout on, penalties computed) or evaluation.
    pub training: bool,
    /// Whether a backward pass may follow. Without one (evaluation) a layer keeps only
    /// what its next step reads, not every step's intermediates.
    pub backward: bool,
    /// Randomness of this pass (dropout masks), derived from the seed and step.
    pub rng: ChaCha8Rng,
    /// Named, already-weighted regularisation terms; the trainer adds them to the loss
    /// and reports each separately.
    pub penalties: Vec<(String, TracedScalar)>,
    /// When set, layers record their internal states per step (`elmlab record`).
    pub recorder: Option<Recorder>,
}

impl ForwardContext {
    /// A pass in training or evaluation mode that a backward pass may follow.
    pub fn new(training: bool, rng: ChaCha8Rng) -> Self {
        ForwardContext { training, backward: true, rng, penalties: Vec::new(), recorder: None }
    }

    /// An evaluation pass that no backward pass follows.
    pub fn evaluation(rng: ChaCha8Rng) -> Self {
        ForwardContext { backward: false, ..Self::new(false, rng) }
    }

    /// Records `value` (`[rows, batch]`, rows laid out as `row_shape`) as the next step of `name`.
    pub fn record(&mut self, name: &str, row_shape: &[usize], value: &Traced) {
        if let Some(r) = self.recorder.as_mut() {
            r.push(name, row_shape, value.as_vec());
        }
    }
}

/// Per-step values of named internal states, gathered during a forward pass.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// name → (shape of one step's row for one sequence, one `[rows, batch]` vector per step)
    pub series: std::collections::BTreeMap<String, (Vec<usize>, Vec<Vec<f32>>)>,
}

impl Recorder {
    pub fn push(&mut self, name: &str, row_shape: &[usize], values: Vec<f32>) {
        self.series.entry(name.to_string()).or_insert_with(|| (row_shape.to_vec(), Vec::new())).1.push(values);
    }

    /// Each series as a `[batch, steps, row_shape...]` array (row-major values and shape).
    pub fn arrays(&self, batch: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.series
            .iter()
            .map(|(name, (row_shape, steps))| {
                let rows: usize = row_shape.iter().product();
                let mut out = Vec::with_capacity(batch * steps.len() * rows);
                for b in 0..batch {
                    for step in steps {
                        out.extend((0..rows).map(|r| step[r * batch + b]));
                    }
                }
                let mut shape = vec![batch, steps.len()];
                shape.extend(row_shape);
                (name.clone(), shape, out)
            })
            .collect()
    }
}
