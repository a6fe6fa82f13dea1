//! Runtime plugins: shared libraries that add neuron models, connectivity patterns and
//! tasks without rebuilding elmlab. The plugin side (the compatibility record and
//! `export_plugin!`) is in `elmlab_core::plugin`; this crate is the host's side.
//!
//! A shared library has its own copy of every static (the inventory list, `tracing`'s
//! dispatcher, dfdx's tensor-id counter). Loading, in order: the file is opened; its
//! compatibility record (C text, no Rust layout involved) is compared field by field
//! with the host's (`compare`); only then is the Rust-ABI entry called, which hands over
//! the library's entries and installs the host's log dispatcher. The library's tensor
//! counter is joined to the host's (`tensor_ids`), and its entries are registered with
//! `tensor_ids::enter` as their boundary, so every call into its tensor code keeps one
//! numbering. A loaded library is never unloaded. Every `unsafe` block here comes after
//! the record check or is the check's own reading, and says why it is sound.

mod compare;
pub mod elf;
mod error;
mod load;
mod search;
mod tensor_ids;

pub use compare::{compare, parse, FieldMismatch};
pub use elmlab_core::plugin::is_path;
pub use error::PluginLoadError;
pub use load::{load, loaded_libraries};
pub use search::{resolve, SEARCH_PATH_VAR};
