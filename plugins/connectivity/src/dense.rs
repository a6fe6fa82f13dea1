//! Every unit reads every source once: all external inputs, then (optionally) every
//! unit's previous output. The fan-in is fixed by the shape, not by the neuron.

use elmlab_core::connectivity::{Connectome, Connectivity, WiringShape};
use elmlab_core::error::PluginError;
use elmlab_core::registry::{ConnectivityEntry, ConnectivityPlugin};
use elmlab_core::settings::Settings;
use rand_chacha::ChaCha8Rng;

/// The pattern is its settings.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct Dense {
    /// also read every unit's previous output
    #[setting(default = true)]
    pub recurrent: bool,
}

impl ConnectivityPlugin for Dense {
    const NAME: &'static str = "dense";
    const DOC: &'static str = "every unit reads every input (and every unit) once: k_c = D_in (+ N)";
    fn build(self) -> Result<Box<dyn Connectivity>, PluginError> {
        Ok(Box::new(self))
    }
}

elmlab_core::inventory::submit! { ConnectivityEntry::of::<Dense>() }

impl Connectivity for Dense {
    fn fan_in(&self, _requested: usize, input_width: usize, units: usize) -> usize {
        input_width + if self.recurrent { units } else { 0 }
    }

    fn wire(&self, shape: WiringShape, _rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        let expected = self.fan_in(0, shape.input_width, shape.units);
        if shape.fan_in != expected {
            return Err(PluginError::shape(format!("dense wiring gives {expected} sources per unit, asked for {}", shape.fan_in)));
        }
        Ok(Connectome { shape, indices: vec![(0..expected).collect(); shape.units] })
    }

    fn is_recurrent(&self) -> bool {
        self.recurrent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_source_once() {
        let d = Dense { recurrent: true };
        assert_eq!(d.fan_in(300, 4, 3), 7);
        let c = d.wire(WiringShape { units: 3, input_width: 4, fan_in: 7 }, &mut elmlab_core::rng::stream(0, "w", 0)).unwrap();
        c.validate().unwrap();
        assert!(c.indices.iter().all(|row| *row == (0..7).collect::<Vec<_>>()));
        assert_eq!(Dense { recurrent: false }.fan_in(1, 4, 3), 4);
    }

    #[test]
    fn registered_and_conforms() {
        let reg = elmlab_core::registry::Registry::builtin();
        let e = reg.connectivity.get("dense").unwrap();
        assert_eq!(e.fields[0].name, "recurrent");
        elmlab_core::conformance::check_entry_fields(e);
        for recurrent in [true, false] {
            elmlab_core::conformance::check_connectivity(&Dense { recurrent });
        }
    }
}
