//! A synthetic text source with a closed-form entropy rate: a first-order Markov chain
//! over 16 letters, each letter followed by one of 3 successors with fixed probabilities.

use elmlab_core::rng::stream;
use rand::Rng;

pub struct MarkovSource {
    /// `transitions[i]`: (successor, probability) pairs, probabilities summing to 1.
    pub transitions: Vec<Vec<(usize, f64)>>,
    pub stationary: Vec<f64>,
    pub seed: u64,
}

pub const LETTERS: usize = 16;

impl MarkovSource {
    pub fn new(seed: u64) -> Self {
        let mut rng = stream(seed, "markov-text/chain", 0);
        let transitions: Vec<Vec<(usize, f64)>> = (0..LETTERS)
            .map(|i| {
                // successors: the next letter (keeps the chain irreducible) and two random ones
                let mut succ = vec![(i + 1) % LETTERS];
                while succ.len() < 3 {
                    let j = rng.gen_range(0..LETTERS);
                    if !succ.contains(&j) {
                        succ.push(j);
                    }
                }
                let w: Vec<f64> = (0..3).map(|_| rng.gen_range(0.2..1.0)).collect();
                let total: f64 = w.iter().sum();
                succ.into_iter().zip(w).map(|(j, w)| (j, w / total)).collect()
            })
            .collect();
        // stationary distribution by power iteration
        let mut pi = vec![1.0 / LETTERS as f64; LETTERS];
        for _ in 0..10_000 {
            let mut next = vec![0.0; LETTERS];
            for (i, row) in transitions.iter().enumerate() {
                for &(j, p) in row {
                    next[j] += pi[i] * p;
                }
            }
            pi = next;
        }
        MarkovSource { transitions, stationary: pi, seed }
    }

    /// Bits per symbol of the chain: `Σ_i π_i H(P_i·)`.
    pub fn entropy_rate(&self) -> f64 {
        self.transitions.iter().zip(&self.stationary).map(|(row, pi)| pi * row.iter().map(|(_, p)| -p * p.log2()).sum::<f64>()).sum()
    }

    /// Bits per symbol of a model that knows only the letter frequencies.
    pub fn unigram_entropy(&self) -> f64 {
        self.stationary.iter().filter(|p| **p > 0.0).map(|p| -p * p.log2()).sum()
    }

    /// `n` bytes of text (letters `a`..`p`).
    pub fn generate(&self, n: usize) -> Vec<u8> {
        let mut rng = stream(self.seed, "markov-text/sample", 0);
        let mut state = 0usize;
        (0..n)
            .map(|_| {
                let u: f64 = rng.gen();
                let mut acc = 0.0;
                let row = &self.transitions[state];
                state = row.iter().find(|(_, p)| {
                    acc += p;
                    u < acc
                }).map(|(j, _)| *j).unwrap_or(row[row.len() - 1].0);
                b'a' + state as u8
            })
            .collect()
    }
}
