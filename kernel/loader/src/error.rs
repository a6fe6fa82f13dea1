//! Why a plugin library was refused.

use crate::compare::FieldMismatch;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PluginLoadError {
    #[error("plugin `{given}` not found (looked at: {looked})")]
    NotFound { given: String, looked: String },
    #[error("plugin {path}: not a shared library that can be loaded: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error("plugin {path}: no elmlab entry point `{symbol}` (a plugin crate exports it with `elmlab_core::export_plugin!();`)")]
    NoEntryPoint { path: PathBuf, symbol: &'static str },
    #[error("plugin {path} was built for another elmlab and is refused; differences: {}. Rebuild it against this elmlab with the same compiler and features.", mismatches.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("; "))]
    Incompatible { path: PathBuf, mismatches: Vec<FieldMismatch> },
    #[error("plugin {path}: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("plugin {path}: {message}")]
    Duplicate { path: PathBuf, message: String },
    #[error("cannot read plugin {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}
