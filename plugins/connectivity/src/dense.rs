//! Every unit reads every source once: all external inputs, then (optionally) every
//! unit's previous output. The fan-in is fixed by the shape, not by the neuron.

use elmlab_kernel::connectivity::{Connectome, Connectivity, WiringShape};
use elmlab_kernel::error::PluginError;
use elmlab_kernel::registry::ConnectivityEntry;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use rand_chacha::ChaCha8Rng;

pub struct Dense {
    pub recurrent: bool,
}

static FIELDS: &[F] = &[F::new("recurrent", K::Bool, D::Bool(true), "also read every unit's previous output")];

fn build(s: &Settings) -> Result<Box<dyn Connectivity>, PluginError> {
    Ok(Box::new(Dense { recurrent: s.bool("recurrent") }))
}

elmlab_kernel::inventory::submit! {
    ConnectivityEntry { name: "dense", doc: "every unit reads every input (and every unit) once: k_c = D_in (+ N)", fields: FIELDS, build }
}

impl Connectivity for Dense {
    fn fan_in(&self, _requested: usize, input_width: usize, units: usize) -> usize {
        input_width + if self.recurrent { units } else { 0 }
    }

    fn wire(&self, shape: WiringShape, _rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        let expected = self.fan_in(0, shape.input_width, shape.units);
        if shape.fan_in != expected {
            return Err(PluginError::new(format!("dense wiring gives {expected} sources per unit, asked for {}", shape.fan_in)));
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
        let c = d.wire(WiringShape { units: 3, input_width: 4, fan_in: 7 }, &mut elmlab_kernel::rng::stream(0, "w", 0)).unwrap();
        c.validate().unwrap();
        assert!(c.indices.iter().all(|row| *row == (0..7).collect::<Vec<_>>()));
        assert_eq!(Dense { recurrent: false }.fan_in(1, 4, 3), 4);
    }

    #[test]
    fn registered() {
        let reg = elmlab_kernel::registry::Registry::builtin();
        assert_eq!(reg.connectivity.get("dense").unwrap().fields[0].name, "recurrent");
    }
}
