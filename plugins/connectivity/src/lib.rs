//! Connectivity patterns: each gives every unit of a layer a list of source indices
//! into `[external inputs ; the layer's previous outputs]`.

mod dense;
mod from_file;
mod random_fan_in;

pub use dense::Dense;
pub use from_file::FromFile;
pub use random_fan_in::RandomFanIn;
