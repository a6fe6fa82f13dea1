//! Experiment configs: RON files, typed `key=value` overrides, schema checking.

mod experiment;
mod node;
mod resolve;

pub use experiment::*;
pub use node::{split_override, to_ron, Node};
pub use resolve::resolve_section;

#[cfg(test)]
mod tests;
