//! Training with elmlab: experiment configs (RON, typed `key=value` overrides, checked
//! against the declared schema and the registry), model assembly and the forward pass,
//! the loss, optimisers and schedules, the trainer, checkpoints and run directories.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod integrity;
pub mod loss;
pub mod memory;
pub mod network;
pub mod npy;
pub mod optim;
pub mod recovery;
pub mod rundir;
pub mod schedule;
pub mod tensorboard;
pub mod trainer;
