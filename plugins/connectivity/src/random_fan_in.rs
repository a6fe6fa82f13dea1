//! The paper's rule (elm-network.md §2): each synapse independently picks a recurrent
//! source with probability `recurrent_share`, else an external input, uniformly and
//! with replacement.

use elmlab_core::connectivity::{Connectome, Connectivity, WiringShape};
use elmlab_core::error::PluginError;
use elmlab_core::registry::{ConnectivityEntry, ConnectivityPlugin};
use elmlab_core::settings::Settings;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The pattern is its settings.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct RandomFanIn {
    /// probability that a synapse reads a recurrent source (0 = feed-forward, at most 1)
    #[setting(default = 0.25, min = 0.0, max = 1.0)]
    pub recurrent_share: f64,
}

impl ConnectivityPlugin for RandomFanIn {
    const NAME: &'static str = "random_fan_in";
    const DOC: &'static str = "fixed fan-in k_c per unit, sources drawn with replacement; a share rho of them recurrent";
    fn build(self) -> Result<Box<dyn Connectivity>, PluginError> {
        Ok(Box::new(self))
    }
}

elmlab_core::inventory::submit! { ConnectivityEntry::of::<RandomFanIn>() }

impl Connectivity for RandomFanIn {
    fn fan_in(&self, requested: usize, _input_width: usize, _units: usize) -> usize {
        requested
    }

    fn wire(&self, shape: WiringShape, rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        let WiringShape { units, input_width, fan_in } = shape;
        if input_width == 0 && self.recurrent_share < 1.0 {
            return Err(PluginError::shape("random_fan_in: the layer has no external inputs to draw from"));
        }
        let indices = (0..units)
            .map(|_| {
                (0..fan_in)
                    .map(|_| {
                        if rng.gen::<f64>() < self.recurrent_share {
                            input_width + rng.gen_range(0..units)
                        } else {
                            rng.gen_range(0..input_width)
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Connectome { shape, indices })
    }

    fn is_recurrent(&self) -> bool {
        self.recurrent_share > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::registry::Registry;
    use elmlab_core::settings::{default_settings, Settings};

    #[test]
    fn registered_with_its_fields_and_conforms() {
        let reg = Registry::builtin();
        let e = reg.connectivity.get("random_fan_in").unwrap();
        assert_eq!(e.fields[0].name, "recurrent_share");
        assert!((e.build)(&default_settings(e.fields)).unwrap().is_recurrent());
        elmlab_core::conformance::check_entry_fields(e);
        for share in [0.0, 0.25, 1.0] {
            elmlab_core::conformance::check_connectivity(&RandomFanIn { recurrent_share: share });
        }
    }

    #[test]
    fn share_of_recurrent_sources_matches_rho() {
        let c = RandomFanIn { recurrent_share: 0.25 };
        let shape = WiringShape { units: 200, input_width: 700, fan_in: 300 };
        let mut rng = elmlab_core::rng::stream(3, "wire", 0);
        let w = c.wire(shape, &mut rng).unwrap();
        w.validate().unwrap();
        let total = (200 * 300) as f64;
        let rec = w.flat().iter().filter(|&&i| i >= 700).count() as f64;
        // binomial sd = sqrt(60000 * .25 * .75) ≈ 106, i.e. 0.0018 of the total
        assert!((rec / total - 0.25).abs() < 0.01, "recurrent share {}", rec / total);
        // uniform over inputs: every input channel is hit, roughly 45000/700 ≈ 64 times
        let mut hits = vec![0usize; 700];
        w.flat().iter().filter(|&&i| i < 700).for_each(|&i| hits[i] += 1);
        assert!(hits.iter().all(|&h| h > 20 && h < 130));
    }

    #[test]
    fn feed_forward_and_seeded() {
        let c = RandomFanIn { recurrent_share: 0.0 };
        let shape = WiringShape { units: 5, input_width: 3, fan_in: 7 };
        let a = c.wire(shape, &mut elmlab_core::rng::stream(1, "wire", 0)).unwrap();
        let b = c.wire(shape, &mut elmlab_core::rng::stream(1, "wire", 0)).unwrap();
        assert_eq!(a, b);
        assert!(a.flat().iter().all(|&i| i < 3));
        assert!(!c.is_recurrent());
    }

    #[test]
    fn refuses_a_share_above_one() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("recurrent_share".to_string(), serde_json::json!(1.5));
        let e = (ConnectivityEntry::of::<RandomFanIn>().build)(&Settings::from_map(m)).err().unwrap().to_string();
        assert!(e.contains("recurrent_share") && e.contains("<= 1"), "{e}");
    }
}
