//! An example elmlab plugin, built as a shared library and loaded at run time
//! (`elmlab --plugin PATH ...`). It registers entries exactly like a compiled-in plugin
//! crate (`inventory::submit!`) and exports the entry point elmlab checks and calls.

pub mod copy_memory;
pub mod tanh_rnn;

elmlab_core::export_plugin!();
