//! Where tensors live, as a config or `--device` names it: `cpu` or `cuda:N`. Which of
//! them this build can use is decided in `tensor.rs` (the one place that knows the build).

use std::fmt;
use std::str::FromStr;

/// A device named by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// The NVIDIA GPU with this index (as `nvidia-smi` and `CUDA_VISIBLE_DEVICES` count).
    Cuda(usize),
}

/// How the schema describes the accepted spellings.
pub const DEVICE_SPELLINGS: &str = "cpu or cuda:N (N = GPU index, e.g. cuda:0)";

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "cpu" => Ok(DeviceChoice::Cpu),
            other => other
                .strip_prefix("cuda:")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device `{other}`; expected {DEVICE_SPELLINGS}")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceChoice;

    #[test]
    fn spellings_round_trip_and_bad_ones_are_named() {
        for (text, choice) in [("cpu", DeviceChoice::Cpu), ("cuda:0", DeviceChoice::Cuda(0)), ("cuda:12", DeviceChoice::Cuda(12))] {
            assert_eq!(text.parse::<DeviceChoice>().unwrap(), choice);
            assert_eq!(choice.to_string(), text);
        }
        for bad in ["gpu", "cuda", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "CPU", "cuda:0:1"] {
            let e = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("cuda:N"), "{bad}: {e}");
        }
    }
}
