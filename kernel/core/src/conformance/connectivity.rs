//! Checks of a connectivity pattern, and a pattern for checking neurons without one.

use crate::connectivity::{Connectome, Connectivity, WiringShape};
use crate::error::PluginError;
use crate::rng::stream;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Every synapse picks any source (inputs or recurrent) uniformly, with replacement, so
/// repeated sources occur: the wiring neuron checks use.
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

/// Wires several shapes: every connectome passes [`Connectome::validate`] and echoes its
/// shape, a feed-forward pattern reads no recurrent source, and the same seed gives the
/// same connectome.
pub fn check_connectivity(pattern: &dyn Connectivity) {
    for (units, input_width, requested) in [(1, 3, 2), (5, 4, 7), (16, 9, 12)] {
        let fan_in = pattern.fan_in(requested, input_width, units);
        let shape = WiringShape { units, input_width, fan_in };
        let wire = |seed| pattern.wire(shape, &mut stream(seed, "conformance/wire", 0)).unwrap_or_else(|e| panic!("wiring {shape:?}: {e}"));
        let c = wire(1);
        assert_eq!(c.shape, shape, "the connectome reports another shape");
        if let Err(e) = c.validate() {
            panic!("wiring {shape:?} breaks the contract: {e}");
        }
        if !pattern.is_recurrent() {
            assert!(c.flat().iter().all(|&j| j < input_width), "a feed-forward pattern read a recurrent source: {:?}", c.indices);
        }
        assert_eq!(c, wire(1), "the same seed wired {shape:?} differently");
    }
}
