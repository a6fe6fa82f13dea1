//! Tasks, each registered as a plugin.

pub mod delayed_recall;
pub mod shd;
