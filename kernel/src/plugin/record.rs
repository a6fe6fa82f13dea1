//! The compatibility record every runtime plugin exports: plain `key=value` lines in a
//! NUL-terminated string, read through a C function before anything with a Rust layout
//! crosses the library boundary. Rust types are only sound across the boundary when
//! both sides were built by the same compiler from the same crates with the same
//! features, so the host refuses a library whose record differs in any field.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// Version of the entry-point contract (the symbols and the types they exchange).
/// Raise it whenever `HostContext`, `PluginEntries`, the entry symbols or the types a
/// plugin's layers exchange with the host change (2: `SequenceOutput` gained `stacked`).
pub const ENTRY_ABI_VERSION: u32 = 2;

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
        size_of::<crate::schema::Settings>(),
        size_of::<serde_json::Value>(),
        size_of::<crate::error::PluginError>(),
        size_of::<crate::params::ParamStore>(),
        size_of::<crate::tensor::Traced>(),
        size_of::<crate::task::Batch>(),
        size_of::<crate::neuron::ForwardContext>(),
        size_of::<crate::neuron::SequenceOutput>(),
        size_of::<rand_chacha::ChaCha8Rng>(),
        size_of::<crate::registry::NeuronEntry>(),
    ];
    sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(".")
}

/// The record of the code calling this: the host's, or, compiled into a plugin, the plugin's.
pub fn own_fields() -> Vec<(&'static str, String)> {
    vec![
        ("abi", ENTRY_ABI_VERSION.to_string()),
        ("kernel", crate::KERNEL_VERSION.to_string()),
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

/// A field whose value differs between host and plugin (`None`: the side lacks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMismatch {
    pub field: String,
    pub host: Option<String>,
    pub plugin: Option<String>,
}

impl std::fmt::Display for FieldMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.as_deref().map(|s| format!("`{s}`")).unwrap_or_else(|| "(absent)".into());
        write!(f, "{}: elmlab has {}, the plugin has {}", self.field, show(&self.host), show(&self.plugin))
    }
}

/// Parses record text; lines without `=` are kept as fields with an empty name so that
/// they show up as differences instead of being ignored.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (String::new(), l.trim().to_string()),
        })
        .collect()
}

/// Every field that differs between the host's record and `plugin_text`, in field order.
pub fn compare(plugin_text: &str) -> Vec<FieldMismatch> {
    let host: BTreeMap<String, String> = own_fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let plugin = parse(plugin_text);
    let mut names: Vec<&String> = host.keys().chain(plugin.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| host.get(*k) != plugin.get(*k))
        .map(|k| FieldMismatch { field: k.clone(), host: host.get(k).cloned(), plugin: plugin.get(k).cloned() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_record_matches_itself_and_names_every_field() {
        let text = own_record().to_str().unwrap();
        assert!(compare(text).is_empty());
        for key in ["abi", "kernel", "rustc", "dfdx", "features", "target", "layout"] {
            assert!(parse(text).contains_key(key), "{key} missing from {text}");
        }
        assert!(parse(text)["features"].contains("cuda:"));
    }

    #[test]
    fn differences_name_the_field_and_both_values() {
        let host = own_record().to_str().unwrap();
        let changed = host.replace(&format!("abi={ENTRY_ABI_VERSION}"), "abi=99").replace(&format!("kernel={}", crate::KERNEL_VERSION), "kernel=0.0.1");
        let changed = changed.lines().filter(|l| !l.starts_with("target=")).collect::<Vec<_>>().join("\n") + "\nextra=1\n";
        let diff = compare(&changed);
        let fields: Vec<&str> = diff.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["abi", "extra", "kernel", "target"]);
        assert_eq!(diff[0].to_string(), format!("abi: elmlab has `{ENTRY_ABI_VERSION}`, the plugin has `99`"));
        assert_eq!(diff[1].host, None);
        assert_eq!(diff[3].plugin, None);
        assert!(diff[3].to_string().ends_with("the plugin has (absent)"));
    }
}
