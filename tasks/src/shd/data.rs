//! Reading SHD files (HDF5, optionally gzipped) and binning them once into a compact
//! form: per sample, the sorted list of active (bin, channel) cells.

use elmlab_core::error::PluginError;
use hdf5_reader::messages::Datatype;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const CHANNELS: usize = 700;
pub const DOWNLOAD_HINT: &str = "the Spiking Heidelberg Digits are published on the Zenke lab datasets page \
(https://zenkelab.org/datasets/): download shd_train.h5.gz and shd_test.h5.gz into this folder, \
or set `task.synthetic=true` for the synthetic twin";

/// One sample as stored: spike times in seconds, channel ids, label.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSample {
    pub times: Vec<f64>,
    pub units: Vec<u64>,
    pub label: u64,
}

/// One binned sample: active cells `bin * CHANNELS + channel`, sorted, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinnedSample {
    pub cells: Vec<u32>,
    pub label: u8,
    /// Position in its file.
    pub index: u32,
}

/// `shd_<split>.h5` or `shd_<split>.h5.gz` in `dir`.
pub fn locate(dir: &Path, split: &str) -> Result<PathBuf, PluginError> {
    for name in [format!("shd_{split}.h5"), format!("shd_{split}.h5.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(PluginError::data(format!("no shd_{split}.h5 or shd_{split}.h5.gz in {}; {DOWNLOAD_HINT}", dir.display())))
}

fn bad(path: &Path, what: impl std::fmt::Display) -> PluginError {
    PluginError::data(format!("{} is not a readable SHD file: {what}. Expected HDF5 with spikes/times, spikes/units (one variable-length array per sample) and labels; {DOWNLOAD_HINT}", path.display()))
}

/// Reads every sample of an SHD file.
pub fn read_file(path: &Path) -> Result<Vec<RawSample>, PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::data(format!("cannot read {}: {e}", path.display())))?;
    parse(bytes, path)
}

/// Every sample of an SHD file's bytes (HDF5, or gzip of it); `path` names it in errors.
pub fn parse(mut bytes: Vec<u8>, path: &Path) -> Result<Vec<RawSample>, PluginError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|e| bad(path, format!("gzip: {e}")))?;
        bytes = out;
    }
    let file = hdf5_reader::Hdf5File::from_vec(bytes).map_err(|e| bad(path, e))?;
    let times = read_vlen(&file, "spikes/times", path)?;
    let units = read_vlen(&file, "spikes/units", path)?;
    let labels = read_labels(&file, path)?;
    // The reader does not notice a file cut short: the three must agree.
    if times.len() != units.len() || times.len() != labels.len() {
        return Err(bad(path, format!("{} spike-time rows, {} unit rows, {} labels", times.len(), units.len(), labels.len())));
    }
    let mut samples = Vec::with_capacity(labels.len());
    for (i, ((t, u), label)) in times.into_iter().zip(units).zip(labels).enumerate() {
        let (Values::Float(t), Values::Unsigned(u)) = (t, u) else {
            return Err(bad(path, "spikes/times must be floating point and spikes/units unsigned integers"));
        };
        if t.len() != u.len() {
            return Err(bad(path, format!("sample {i} has {} times but {} units", t.len(), u.len())));
        }
        samples.push(RawSample { times: t, units: u, label });
    }
    Ok(samples)
}

enum Values {
    Float(Vec<f64>),
    Unsigned(Vec<u64>),
}

fn read_vlen(file: &hdf5_reader::Hdf5File, name: &str, path: &Path) -> Result<Vec<Values>, PluginError> {
    let ds = file.dataset(name).map_err(|e| bad(path, format!("{name}: {e}")))?;
    let Datatype::VarLen { base, .. } = ds.dtype() else {
        return Err(bad(path, format!("{name} is not a variable-length dataset")));
    };
    let (size, float) = match base.as_ref() {
        Datatype::FloatingPoint { size, .. } if matches!(size, 2 | 4 | 8) => (*size as usize, true),
        Datatype::FixedPoint { size, signed: false, .. } if matches!(size, 1 | 2 | 4 | 8) => (*size as usize, false),
        other => return Err(bad(path, format!("{name} holds {other:?}"))),
    };
    let raw = ds.read_raw_bytes().map_err(|e| bad(path, format!("{name}: {e}")))?;
    let width = ds.vlen_reference_size();
    if width == 0 || raw.len() % width != 0 {
        return Err(bad(path, format!("{name}: {} bytes of references", raw.len())));
    }
    let mut rows = Vec::with_capacity(raw.len() / width);
    for reference in raw.chunks_exact(width) {
        let bytes = ds.resolve_vlen_reference_bytes(reference, size).map_err(|e| bad(path, format!("{name}: {e}")))?;
        let values = bytes.chunks_exact(size);
        rows.push(if float {
            Values::Float(
                values
                    .map(|c| match size {
                        2 => half::f16::from_le_bytes([c[0], c[1]]).to_f64(),
                        4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                        _ => f64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                    })
                    .collect(),
            )
        } else {
            Values::Unsigned(values.map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64)).collect())
        });
    }
    Ok(rows)
}

fn read_labels(file: &hdf5_reader::Hdf5File, path: &Path) -> Result<Vec<u64>, PluginError> {
    let ds = file.dataset("labels").map_err(|e| bad(path, format!("labels: {e}")))?;
    let size = match ds.dtype() {
        Datatype::FixedPoint { size, .. } if matches!(size, 1 | 2 | 4 | 8) => *size as usize,
        other => return Err(bad(path, format!("labels hold {other:?}"))),
    };
    let raw = ds.read_raw_bytes().map_err(|e| bad(path, format!("labels: {e}")))?;
    Ok(raw.chunks_exact(size).map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64)).collect())
}

/// The bin of a spike at `t` seconds, or `None` outside `[0, 1 s)`. A spike exactly on
/// an edge goes to the later bin, also when `t / width` falls a rounding error short.
pub fn bin_of(t: f64, width: f64, bins: usize) -> Option<usize> {
    if !(0.0..1.0).contains(&t) {
        return None;
    }
    let x = t / width;
    let nearest = x.round();
    let b = if (x - nearest).abs() <= 1e-9 * nearest.max(1.0) { nearest } else { x.floor() };
    Some((b as usize).min(bins - 1))
}

/// Bins every sample once: binary (bin, channel) cells over the first second.
pub fn bin_samples(samples: &[RawSample], width: f64, path: &Path) -> Result<Vec<BinnedSample>, PluginError> {
    let bins = bins_per_second(width);
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.label > u8::MAX as u64 {
                return Err(bad(path, format!("sample {i} has label {}", s.label)));
            }
            let mut cells = Vec::with_capacity(s.times.len());
            for (&t, &u) in s.times.iter().zip(&s.units) {
                if u as usize >= CHANNELS {
                    return Err(bad(path, format!("sample {i} has a spike on channel {u}; SHD has {CHANNELS}")));
                }
                if let Some(b) = bin_of(t, width, bins) {
                    cells.push((b * CHANNELS + u as usize) as u32);
                }
            }
            cells.sort_unstable();
            cells.dedup();
            Ok(BinnedSample { cells, label: s.label as u8, index: i as u32 })
        })
        .collect()
}

pub fn bins_per_second(width: f64) -> usize {
    (1.0 / width).round() as usize
}
