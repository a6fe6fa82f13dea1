//! A connectivity pattern for the neuron tests, independent of the connectivity crate:
//! every synapse picks any source (inputs or recurrent) uniformly, with replacement.

use elmlab_kernel::connectivity::{Connectome, Connectivity, WiringShape};
use elmlab_kernel::error::PluginError;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub struct AnySource;

impl Connectivity for AnySource {
    fn fan_in(&self, requested: usize, _: usize, _: usize) -> usize {
        requested
    }
    fn wire(&self, shape: WiringShape, rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        let sources = shape.input_width + shape.units;
        Ok(Connectome { shape, indices: (0..shape.units).map(|_| (0..shape.fan_in).map(|_| rng.gen_range(0..sources)).collect()).collect() })
    }
    fn is_recurrent(&self) -> bool {
        true
    }
}
