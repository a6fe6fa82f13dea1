//! SHD (Spiking Heidelberg Digits) and SHD-Adding (tasks.md): the real HDF5 files or
//! their synthetic twin, binned once, split into seeded pools.

pub mod data;
pub mod synth;
mod tasks;

use data::{bin_samples, bins_per_second, locate, read_file, BinnedSample, CHANNELS};
use elmlab_core::error::PluginError;
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Settings shared by the SHD tasks.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ShdData {
    /// folder with shd_train.h5(.gz) and shd_test.h5(.gz)
    #[setting(default = "data/shd")]
    pub data_dir: String,
    /// use the synthetic twin: write it into data_dir if the files are missing
    #[setting(default = false)]
    pub synthetic: bool,
    /// bin width in milliseconds (the first second is kept)
    #[setting(default = 2.0, above = 0.0, max = 1000.0)]
    pub bin_ms: f64,
    /// share of the train file held out as the validation pool (seeded)
    #[setting(default = 0.2, min = 0.0, below = 1.0)]
    pub validation_share: f64,
}

/// Where and how to read the data.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSource {
    pub dir: PathBuf,
    pub synthetic: bool,
    pub bin_width: f64,
    pub validation_share: f64,
    pub seed: u64,
}

impl DataSource {
    pub fn new(s: &ShdData, seed: u64) -> Result<Self, PluginError> {
        let bin_ms = s.bin_ms;
        if (1000.0 / bin_ms - (1000.0 / bin_ms).round()).abs() > 1e-9 {
            return Err(PluginError::setting("bin_ms", format!("must divide 1000 ms into whole bins, got {bin_ms}")));
        }
        Ok(DataSource { dir: PathBuf::from(&s.data_dir), synthetic: s.synthetic, bin_width: bin_ms / 1000.0, validation_share: s.validation_share, seed })
    }

    pub fn bins(&self) -> usize {
        bins_per_second(self.bin_width)
    }

    /// Reads and bins both files and splits the train file into train and validation pools.
    pub fn load(&self) -> Result<Pools, PluginError> {
        if self.synthetic && locate(&self.dir, "train").is_err() {
            std::fs::create_dir_all(&self.dir).map_err(|e| PluginError::data(format!("creating {}: {e}", self.dir.display())))?;
            tracing::info!(dir = %self.dir.display(), "writing the synthetic SHD twin");
            synth::write_synthetic(&self.dir, &synth::SynthSpec::default())?;
        }
        let read = |split: &str| -> Result<Vec<BinnedSample>, PluginError> {
            let path = locate(&self.dir, split)?;
            bin_samples(&read_file(&path)?, self.bin_width, &path)
        };
        let mut train = read("train")?;
        let test = read("test")?;
        if train.len() < 2 || test.is_empty() {
            return Err(PluginError::data(format!("{}: the train file needs at least 2 samples and the test file 1", self.dir.display())));
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut stream(self.seed, "shd/validation-split", 0));
        let n_valid = ((train.len() as f64 * self.validation_share).round() as usize).clamp(1, train.len() - 1);
        let mut is_valid = vec![false; train.len()];
        order[..n_valid].iter().for_each(|&i| is_valid[i] = true);
        let (mut valid, mut rest) = (Vec::new(), Vec::new());
        for (i, s) in train.drain(..).enumerate() {
            if is_valid[i] { valid.push(s) } else { rest.push(s) }
        }
        let cells: usize = rest.iter().chain(&valid).chain(&test).map(|s| s.cells.len()).sum();
        tracing::info!(train = rest.len(), valid = valid.len(), test = test.len(), megabytes = (cells * 4) as f64 / 1e6, "SHD binned");
        Ok(Pools { train: rest, valid, test })
    }
}

/// The three sample pools.
#[derive(Debug)]
pub struct Pools {
    pub train: Vec<BinnedSample>,
    pub valid: Vec<BinnedSample>,
    pub test: Vec<BinnedSample>,
}

/// Data loaded on first use, so that `inspect` needs no files.
pub struct LazyPools {
    source: DataSource,
    pools: OnceLock<Result<Pools, String>>,
}

impl LazyPools {
    pub fn new(source: DataSource) -> Self {
        LazyPools { source, pools: OnceLock::new() }
    }
    pub fn source(&self) -> &DataSource {
        &self.source
    }
    pub fn get(&self) -> Result<&Pools, PluginError> {
        self.pools.get_or_init(|| self.source.load().map_err(|e| elmlab_core::error::chain(&e))).as_ref().map_err(|m| PluginError::data(m.clone()))
    }
}

/// Writes a sample's active cells into a dense `[steps][batch][CHANNELS]` input at step offset `offset`.
pub(crate) fn paint(inputs: &mut [f32], sample: &BinnedSample, offset: usize, b: usize, batch: usize) {
    for &cell in &sample.cells {
        let (bin, channel) = (cell as usize / CHANNELS, cell as usize % CHANNELS);
        inputs[((offset + bin) * batch + b) * CHANNELS + channel] = 1.0;
    }
}
