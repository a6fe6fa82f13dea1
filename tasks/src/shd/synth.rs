//! The synthetic twin of SHD: class-specific rate patterns over (time, channel) with
//! per-sample jitter and background noise, written as real HDF5 files in the SHD layout
//! so that the very same loader reads them.

use super::data::CHANNELS;
use elmlab_core::error::PluginError;
use elmlab_core::rng::stream;
use hdf5_writer::{ByteOrder, DatasetBuilder, Datatype, Hdf5Builder, WriteOptions};
use rand::Rng;
use std::path::Path;

/// What the synthetic source draws.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSpec {
    pub train_samples: usize,
    pub test_samples: usize,
    pub classes: usize,
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec { train_samples: 1200, test_samples: 400, classes: 20, seed: 0 }
    }
}

/// A burst of spikes around (time, channel): a class pattern is a few of them.
#[derive(Clone, Copy, Debug)]
struct Blob {
    time: f64,
    channel: f64,
}

fn class_patterns(spec: &SynthSpec) -> Vec<Vec<Blob>> {
    let mut rng = stream(spec.seed, "synth-shd/patterns", 0);
    (0..spec.classes)
        .map(|_| (0..4).map(|_| Blob { time: rng.gen_range(0.05..0.85), channel: rng.gen_range(20.0..(CHANNELS as f64 - 20.0)) }).collect())
        .collect()
}

/// One sample of `class`: 80 spikes per blob spread over ~40 ms and ~50 channels, the
/// whole pattern shifted by up to ±30 ms and ±10 channels, plus 60 uniform noise spikes
/// over 1.2 s (so some fall after the 1 s cut, as in SHD).
fn sample(patterns: &[Vec<Blob>], class: usize, rng: &mut impl Rng) -> (Vec<f32>, Vec<u16>) {
    let (dt, dc) = (rng.gen_range(-0.03..0.03), rng.gen_range(-10.0..10.0));
    let mut spikes: Vec<(f32, u16)> = Vec::new();
    for blob in &patterns[class] {
        for _ in 0..80 {
            let t = blob.time + dt + rng.gen_range(-0.02..0.02);
            let c = (blob.channel + dc + rng.gen_range(-25.0..25.0)).round();
            if t >= 0.0 && (0.0..CHANNELS as f64).contains(&c) {
                spikes.push((t as f32, c as u16));
            }
        }
    }
    for _ in 0..60 {
        spikes.push((rng.gen_range(0.0..1.2) as f32, rng.gen_range(0..CHANNELS) as u16));
    }
    spikes.sort_by(|a, b| a.0.total_cmp(&b.0));
    spikes.into_iter().unzip()
}

/// Writes one file in the SHD layout: `spikes/times` (vlen float32), `spikes/units`
/// (vlen uint16), `labels` (uint8).
pub fn write_shd_file(path: &Path, samples: &[(Vec<f32>, Vec<u16>, u8)]) -> Result<(), PluginError> {
    let n = samples.len() as u64;
    let err = |e: hdf5_writer::Error| PluginError::data(format!("writing {}: {e}", path.display()));
    let times: Vec<Vec<u8>> = samples.iter().map(|(t, _, _)| t.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let units: Vec<Vec<u8>> = samples.iter().map(|(_, u, _)| u.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let labels: Vec<u8> = samples.iter().map(|s| s.2).collect();
    let f32_type = Datatype::FloatingPoint { size: 4, byte_order: ByteOrder::LittleEndian };
    let u16_type = Datatype::FixedPoint { size: 2, signed: false, byte_order: ByteOrder::LittleEndian };
    let plan = Hdf5Builder::new()
        .dataset(DatasetBuilder::vlen_sequence_data("spikes/times", f32_type, vec![n], times).map_err(err)?)
        .dataset(DatasetBuilder::vlen_sequence_data("spikes/units", u16_type, vec![n], units).map_err(err)?)
        .dataset(DatasetBuilder::typed_data("labels", vec![n], &labels).map_err(err)?)
        .into_plan()
        .map_err(err)?;
    let bytes = plan.encode(WriteOptions::default()).map_err(err)?;
    elmlab_core::fs::write_atomic(path, &bytes).map_err(|e| PluginError::data(elmlab_core::error::chain(&e)))
}

/// Writes `shd_train.h5` and `shd_test.h5` of the synthetic source into `dir`.
pub fn write_synthetic(dir: &Path, spec: &SynthSpec) -> Result<(), PluginError> {
    let patterns = class_patterns(spec);
    for (split, count) in [("train", spec.train_samples), ("test", spec.test_samples)] {
        let mut rng = stream(spec.seed, &format!("synth-shd/{split}"), 0);
        let samples: Vec<(Vec<f32>, Vec<u16>, u8)> = (0..count)
            .map(|i| {
                let class = i % spec.classes;
                let (t, u) = sample(&patterns, class, &mut rng);
                (t, u, class as u8)
            })
            .collect();
        write_shd_file(&dir.join(format!("shd_{split}.h5")), &samples)?;
    }
    Ok(())
}
