//! Where the predecessor neurons integrate their input in time before the MLP: per
//! synapse (the first ELM neuron's `s_t`) or per branch (the branch ELM's `b_t`).

/// The input trace of a predecessor ELM neuron and its timescale in steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trace {
    /// `s_t = κ_s ⊙ s_{t−1} + w_s ⊙ x_t`, then summed per branch.
    Synapse { tau_s: f64 },
    /// `b_t = κ_b ⊙ b_{t−1} + Σ_branch w_s ⊙ x_t`.
    Branch { tau_b: f64 },
}

impl Trace {
    pub fn tau(self) -> f64 {
        match self {
            Trace::Synapse { tau_s } => tau_s,
            Trace::Branch { tau_b } => tau_b,
        }
    }
    /// The state part's name, as the predecessor names the variable.
    pub fn state_name(self) -> &'static str {
        match self {
            Trace::Synapse { .. } => "s",
            Trace::Branch { .. } => "b",
        }
    }
}
