//! Tasks, each registered as a plugin.

pub mod delayed_recall;
pub mod enwik8;
pub mod shd;
