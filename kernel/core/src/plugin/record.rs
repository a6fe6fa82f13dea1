//! The compatibility record every runtime plugin exports: plain `key=value` lines in a
//! NUL-terminated string, read through a C function before anything with a Rust layout
//! crosses the library boundary. Rust types are only sound across the boundary when
//! both sides were built by the same compiler from the same crates with the same
//! features, so the host refuses a library whose record differs in any field.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// Version of the entry-point contract (the symbols and the types they exchange).
/// Raise it whenever `HostContext`, `PluginEntries`, the entry symbols or the types a
/// plugin's layers exchange with the host change (2: `SequenceOutput` gained `stacked`;
/// 3: the core crate, typed layer state with an explicit history, declared settings;
/// 4: `LayerPlan::activations_per_step` and `Cell::activations_per_step` for memory estimates;
/// 5: `ForwardContext::backward`).
pub const ENTRY_ABI_VERSION: u32 = 5;

/// Features that change types or code shared across the boundary.
fn features() -> String {
    let flags = [("cuda", cfg!(feature = "cuda")), ("debug-assertions", cfg!(debug_assertions))];
    flags.iter().map(|(name, on)| format!("{name}:{}", if *on { "on" } else { "off" })).collect::<Vec<_>>().join(",")
}

/// Sizes of types that cross the boundary. Equal sizes do not prove equal layouts, but
/// a dependency resolved to another version (outside elmlab's lock file) often shows here.
fn layout() -> String {
    use std::mem::size_of;
    let sizes = [
        size_of::<tracing::Dispatch>(),
        size_of::<crate::settings::Settings>(),
        size_of::<serde_json::Value>(),
        size_of::<crate::error::PluginError>(),
        size_of::<crate::params::ParamStore>(),
        size_of::<crate::tensor::Traced>(),
        size_of::<crate::task::Batch>(),
        size_of::<crate::neuron::ForwardContext>(),
        size_of::<crate::neuron::SequenceOutput>(),
        size_of::<crate::neuron::LayerState>(),
        size_of::<rand_chacha::ChaCha8Rng>(),
        size_of::<crate::registry::NeuronEntry>(),
        size_of::<crate::neuron::LayerPlan>(),
    ];
    sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(".")
}

/// The record of the code calling this: the host's, or, compiled into a plugin, the plugin's.
pub fn own_fields() -> Vec<(&'static str, String)> {
    vec![
        ("abi", ENTRY_ABI_VERSION.to_string()),
        ("kernel", crate::CORE_VERSION.to_string()),
        ("rustc", crate::RUSTC_VERSION.to_string()),
        ("dfdx", crate::DFDX_VERSION.to_string()),
        ("features", features()),
        ("target", crate::TARGET.to_string()),
        ("layout", layout()),
    ]
}

/// [`own_fields`] as the exported text; it lives for the whole process.
pub fn own_record() -> &'static CStr {
    static RECORD: OnceLock<CString> = OnceLock::new();
    RECORD.get_or_init(|| {
        let text: String = own_fields().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        CString::new(text).expect("record fields contain no NUL")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_record_names_every_field() {
        let text = own_record().to_str().unwrap();
        let keys: Vec<&str> = text.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        assert_eq!(keys, ["abi", "kernel", "rustc", "dfdx", "features", "target", "layout"]);
        assert!(text.contains("features=cuda:"), "{text}");
    }
}
