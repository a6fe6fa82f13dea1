//! The host's side of the compatibility record (`elmlab_core::plugin::record`): the
//! library's record is compared field by field with the host's before anything with a
//! Rust layout crosses.

use elmlab_core::plugin::record::own_fields;
use std::collections::BTreeMap;

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
    use elmlab_core::plugin::record::{own_record, ENTRY_ABI_VERSION};

    #[test]
    fn the_hosts_record_matches_itself_and_names_every_field() {
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
        let changed = host.replace(&format!("abi={ENTRY_ABI_VERSION}"), "abi=99").replace(&format!("kernel={}", elmlab_core::CORE_VERSION), "kernel=0.0.1");
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
