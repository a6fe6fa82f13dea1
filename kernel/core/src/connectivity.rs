//! The connectivity contract: which sources each unit of a layer reads.

use crate::error::{ConnectomeError, PluginError};
use rand_chacha::ChaCha8Rng;

/// The shape of the wiring problem: `units` neurons, each reading `fan_in` sources from
/// `[external inputs (input_width) ; the layer's previous outputs (units)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WiringShape {
    pub units: usize,
    pub input_width: usize,
    pub fan_in: usize,
}

/// Per-unit source lists: `indices[i]` has `fan_in` entries in `0..input_width+units`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connectome {
    pub shape: WiringShape,
    pub indices: Vec<Vec<usize>>,
}

impl Connectome {
    /// Row-major `[units * fan_in]` indices, the layout the gather op needs.
    pub fn flat(&self) -> Vec<usize> {
        self.indices.iter().flatten().copied().collect()
    }
    /// Checks the invariants every pattern must keep; the kernel calls this on every
    /// connectome a plugin returns.
    pub fn validate(&self) -> Result<(), ConnectomeError> {
        let s = self.shape;
        if self.indices.len() != s.units {
            return Err(ConnectomeError::Rows { rows: self.indices.len(), units: s.units });
        }
        let sources = s.input_width + s.units;
        for (unit, row) in self.indices.iter().enumerate() {
            if row.len() != s.fan_in {
                return Err(ConnectomeError::FanIn { unit, got: row.len(), fan_in: s.fan_in });
            }
            if let Some(&bad) = row.iter().find(|&&j| j >= sources) {
                return Err(ConnectomeError::Source { unit, source_index: bad, sources });
            }
        }
        Ok(())
    }
}

/// A configured connectivity pattern.
pub trait Connectivity: Send + Sync {
    /// The fan-in the pattern gives, given what the neuron asks for. Random fan-in
    /// honours the request; dense reads every source once (`input_width + units`).
    fn fan_in(&self, requested: usize, input_width: usize, units: usize) -> usize;
    /// Draws the connectome once, at initialisation, from the run's RNG.
    fn wire(&self, shape: WiringShape, rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError>;
    /// Whether the pattern reads the layer's own outputs (a feed-forward pattern does not).
    fn is_recurrent(&self) -> bool;
}
