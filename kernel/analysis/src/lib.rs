//! The analysis of sweeps: the tradeoff-model contract and its registry (`tradeoff`),
//! and least-squares fitting with standard errors (`fit`).

pub mod fit;
pub mod tradeoff;
