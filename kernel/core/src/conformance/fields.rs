//! Checks of declared settings.

use crate::registry::Described;
use crate::schema::{DefaultValue, FieldKind, FieldSpec};

/// Every field has a doc line and a unique name, and a default that its kind accepts
/// (a choice's default is one of its words, a number within its bounds); sections are
/// checked field by field.
pub fn check_fields(fields: &[FieldSpec]) {
    for (i, f) in fields.iter().enumerate() {
        assert!(!f.doc.trim().is_empty(), "setting `{}` has no doc", f.name);
        assert!(!fields[..i].iter().any(|o| o.name == f.name), "setting `{}` is declared twice", f.name);
        match (f.kind, f.default) {
            (FieldKind::Section(inner), _) => check_fields(inner),
            (FieldKind::Plugin(_), DefaultValue::Text(_) | DefaultValue::Required) => {}
            (kind, default) => {
                if let Some(v) = default.to_json() {
                    assert!(kind.accepts(&v), "setting `{}`: its default {v} is not {kind}", f.name);
                }
            }
        }
    }
}

/// [`check_fields`] for a registered entry, which must also have a doc line.
pub fn check_entry_fields(entry: &dyn Described) {
    assert!(!entry.doc().trim().is_empty(), "`{}` has no doc", entry.name());
    check_fields(entry.fields());
}
