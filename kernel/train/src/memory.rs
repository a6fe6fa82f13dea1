//! The memory a run needs, estimated from the closed-form plan before anything is
//! allocated, and the limit it must fit: the machine's available memory, or the one
//! given with `--max-memory`.

use crate::error::BuildError;
use crate::network::ModelPlan;
use std::sync::OnceLock;

/// What a model needs for one purpose, in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub parameters: u64,
    /// Gradients and the copy of the weights kept while the best ones are tested.
    pub gradients: u64,
    /// Adam's two moments per parameter.
    pub optimizer: u64,
    /// What the layers keep per step for the backward pass, and the batch's inputs.
    pub activations: u64,
    /// The process itself: code, thread stacks, allocator caches (a small run peaks at ~30 MiB).
    pub base: u64,
    /// What the numbers are for ("training with batch 32 × 20 steps").
    pub purpose: String,
}

const F32: u64 = 4;
const BASE: u64 = 32 << 20;

impl MemoryEstimate {
    /// Training: weights, gradients, a weights copy, two moments, and the activations of
    /// `batch` sequences of `steps` steps.
    pub fn training(plan: &ModelPlan, batch: usize, steps: usize) -> Self {
        let p = plan.total_params as u64 * F32;
        // the dense inputs and their traced copies, then what every layer keeps
        let per_step: u64 = 2 * plan.input_width as u64 + plan.layers.iter().map(|l| l.activations_per_step).sum::<u64>();
        MemoryEstimate {
            parameters: p,
            gradients: 2 * p,
            optimizer: 2 * p,
            activations: per_step.saturating_mul(batch as u64).saturating_mul(steps as u64).saturating_mul(F32),
            base: BASE,
            purpose: format!("training with batch {batch} × {steps} steps"),
        }
    }

    /// Evaluation: the weights and one step's values for `batch` sequences.
    pub fn evaluation(plan: &ModelPlan, batch: usize) -> Self {
        let per_step: u64 = plan.layers.iter().map(|l| l.activations_per_step).sum();
        MemoryEstimate {
            parameters: plan.total_params as u64 * F32,
            gradients: 0,
            optimizer: 0,
            activations: per_step.saturating_mul(batch as u64).saturating_mul(F32),
            base: BASE,
            purpose: format!("evaluation with batch {batch}"),
        }
    }

    pub fn total(&self) -> u64 {
        [self.parameters, self.gradients, self.optimizer, self.activations, self.base].iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// "3.2 GiB (parameters 0.6 GiB, gradients ..., ...)".
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("parameters {}", bytes(self.parameters))];
        if self.gradients > 0 {
            parts.push(format!("gradients and a weights copy {}", bytes(self.gradients)));
        }
        if self.optimizer > 0 {
            parts.push(format!("optimiser moments {}", bytes(self.optimizer)));
        }
        parts.push(format!("activations {}", bytes(self.activations)));
        format!("{} for {} ({})", bytes(self.total()), self.purpose, parts.join(", "))
    }
}

/// A byte count for people: "512 MiB", "3.4 TiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Parses "8G", "512M", "1.5T", "2GiB" or a plain byte count.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size (e.g. 8G, 512M, 1.5T)"))?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use K, M, G or T)")),
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("`{text}` must be a positive size"));
    }
    Ok((value * scale as f64) as u64)
}

static LIMIT: OnceLock<u64> = OnceLock::new();

/// Sets the limit for this process (`--max-memory`), instead of the available memory.
pub fn set_limit(bytes: u64) {
    let _ = LIMIT.set(bytes);
}

/// The limit set with [`set_limit`], if any (passed on to child processes).
pub fn given_limit() -> Option<u64> {
    LIMIT.get().copied()
}

/// The machine's available memory (`MemAvailable` of /proc/meminfo), if it says.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What this process's cgroup still allows: limit − usage (v2: `memory.max`,
/// `memory.current`; v1: `memory.limit_in_bytes`, `memory.usage_in_bytes`), if it has a
/// limit (a Slurm job's `--mem`, a container's). The machine may have more free.
pub fn cgroup_room() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |dir: &std::path::Path, a: &str, b: &str| Some(room(&std::fs::read_to_string(dir.join(a)).ok()?, &std::fs::read_to_string(dir.join(b)).ok()?));
    let mut found = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or("").trim_start_matches('/'));
        let v2 = controllers.is_empty();
        let v1 = controllers.split(',').any(|c| c == "memory");
        let room = if v2 {
            read(&std::path::Path::new("/sys/fs/cgroup").join(path), "memory.max", "memory.current").flatten()
        } else if v1 {
            read(&std::path::Path::new("/sys/fs/cgroup/memory").join(path), "memory.limit_in_bytes", "memory.usage_in_bytes").flatten()
        } else {
            None
        };
        found = match (found, room) {
            (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    found
}

fn room(max: &str, current: &str) -> Option<u64> {
    let max: u64 = max.trim().parse().ok()?; // "max" (no limit) does not parse
    let current: u64 = current.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// The limit a model must fit: `--max-memory`, else the smaller of the machine's available
/// memory and the cgroup's room; with what it is, for messages.
pub fn limit() -> Option<(u64, &'static str)> {
    if let Some(l) = LIMIT.get() {
        return Some((*l, "the limit given with --max-memory"));
    }
    match (available(), cgroup_room()) {
        (Some(a), Some(c)) if c < a => Some((c, "the room left in this process's cgroup, e.g. a Slurm job's --mem")),
        (Some(a), _) => Some((a, "the memory available on this machine")),
        (None, Some(c)) => Some((c, "the room left in this process's cgroup, e.g. a Slurm job's --mem")),
        (None, None) => None,
    }
}

/// Refuses what does not fit the limit, naming the estimate and the limit.
pub fn check(estimate: &MemoryEstimate) -> Result<(), BuildError> {
    let Some((limit, source)) = limit() else { return Ok(()) };
    if estimate.total() > limit {
        return Err(BuildError::Memory { estimate: estimate.describe(), limit: format!("{} ({source})", bytes(limit)) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_limit_leaves_max_minus_current() {
        assert_eq!(room("1073741824\n", "73741824\n"), Some(1_000_000_000));
        assert_eq!(room("max\n", "5\n"), None, "no limit");
        assert_eq!(room("10", "20"), Some(0));
    }

    #[test]
    fn sizes_are_read_and_written_for_people() {
        assert_eq!(parse_bytes("8G").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5T").unwrap(), 3 << 39);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        for bad in ["", "G", "8Q", "-1G", "0"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }
}
