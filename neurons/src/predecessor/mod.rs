//! The predecessor neurons (Spieler et al., ICLR 2024; `AaronSpieler/elmneuron`) as
//! network units wired by a connectivity pattern: `elm_v1` (synaptic traces) and
//! `branch_elm` (branch traces). Equations, initialisation and defaults: docs/neurons.md.

mod branch_elm;
mod cell;
mod elm_v1;
mod settings;
mod trace;
#[cfg(test)]
mod tests;

pub use branch_elm::BranchElmSettings;
pub use cell::PredecessorElm;
pub use elm_v1::ElmV1Settings;
pub use settings::PredecessorSettings;
pub use trace::Trace;
