//! Checks a raw config tree against the declared fields and fills in defaults.

use super::node::Node;
use crate::error::ConfigError;
use elmlab_core::error::RegistryError;
use elmlab_core::registry::Registry;
use elmlab_core::schema::{DefaultValue, FieldKind, FieldSpec};
use serde_json::{Map, Value};

/// Resolves a section: every declared field present, every value of its declared type,
/// no undeclared key. `path` is the dotted place of the section (`""` at the top).
pub fn resolve_section(fields: &[FieldSpec], node: &Node, path: &str, registry: &Registry) -> Result<Value, ConfigError> {
    let map = match node {
        Node::Map(map) => map,
        other => {
            return Err(ConfigError::WrongType {
                key: display_path(path),
                expected: format!("a section with keys {}", key_list(fields)),
                got: other.brief(),
                plugin: String::new(),
            })
        }
    };
    let mut extra: Vec<&String> = map.keys().filter(|k| !fields.iter().any(|f| f.name == k.as_str())).collect();
    if let Some(key) = extra.pop() {
        return Err(unknown_key(path, key, &key_list(fields)));
    }
    let mut out = Map::new();
    for field in fields {
        let key = join(path, field.name);
        let value = match map.get(field.name) {
            Some(given) => resolve_value(field, given, &key, registry)?,
            None => default_of(field, &key, registry)?,
        };
        out.insert(field.name.to_string(), value);
    }
    Ok(Value::Object(out))
}

fn default_of(field: &FieldSpec, key: &str, registry: &Registry) -> Result<Value, ConfigError> {
    match (field.kind, field.default) {
        (FieldKind::Section(fields), _) => resolve_section(fields, &Node::empty_map(), key, registry),
        (FieldKind::Plugin(_), DefaultValue::Text(kind)) => resolve_value(field, &Node::Text(kind.to_string()), key, registry),
        (FieldKind::Plugin(family), _) => Err(ConfigError::Missing { key: key.to_string(), doc: format!("give `{key}: (kind: ...)` with one of: {}", registry.names(family).join(", ")) }),
        (_, default) => default.to_json().ok_or_else(|| ConfigError::Missing { key: key.to_string(), doc: field.doc.to_string() }),
    }
}

fn resolve_value(field: &FieldSpec, node: &Node, key: &str, registry: &Registry) -> Result<Value, ConfigError> {
    // Errors quote what the user wrote (an override's text, not its parsed form).
    let given = node;
    let wrong = |node: &Node| {
        let got = if matches!(given, Node::Override(_)) { given.brief() } else { node.brief() };
        ConfigError::WrongType { key: key.to_string(), expected: field.kind.to_string(), got, plugin: String::new() }
    };
    // An override is text until the schema says what it must be.
    let parsed;
    let node = match node {
        Node::Override(_) if matches!(field.kind, FieldKind::Section(_)) => {
            let FieldKind::Section(fields) = field.kind else { unreachable!() };
            return Err(ConfigError::WrongType { key: key.to_string(), expected: format!("a section; set its keys ({})", key_list(fields)), got: node.brief(), plugin: String::new() });
        }
        Node::Override(text) => {
            parsed = parse_override(field.kind, text).ok_or_else(|| wrong(node))?;
            &parsed
        }
        n => n,
    };
    match field.kind {
        FieldKind::Int { min, max } | FieldKind::OptionalInt { min, max } => match node {
            Node::Int(i) if (min..=max).contains(i) => Ok(Value::from(*i)),
            Node::Null if matches!(field.kind, FieldKind::OptionalInt { .. }) => Ok(Value::Null),
            _ => Err(wrong(node)),
        },
        FieldKind::Float(interval) | FieldKind::OptionalFloat(interval) => {
            let number = match node {
                Node::Int(i) => Some(*i as f64),
                Node::Float(f) => Some(*f),
                _ => None,
            };
            match number {
                Some(x) if interval.contains(x) => Ok(Value::from(x)),
                None if matches!(node, Node::Null) && matches!(field.kind, FieldKind::OptionalFloat(_)) => Ok(Value::Null),
                _ => Err(wrong(node)),
            }
        }
        FieldKind::Bool => match node {
            Node::Bool(b) => Ok(Value::from(*b)),
            _ => Err(wrong(node)),
        },
        FieldKind::Text => match node {
            Node::Text(s) => Ok(Value::from(s.clone())),
            _ => Err(wrong(node)),
        },
        FieldKind::Choice(words) => match node {
            Node::Text(s) if words.contains(&s.as_str()) => Ok(Value::from(s.clone())),
            _ => Err(wrong(node)),
        },
        FieldKind::Device => match node {
            Node::Text(s) if s.parse::<elmlab_core::device::DeviceChoice>().is_ok() => Ok(Value::from(s.clone())),
            _ => Err(wrong(node)),
        },
        FieldKind::Range(interval) => match node {
            Node::List(items) if items.len() == 2 => {
                let nums: Vec<f64> = items
                    .iter()
                    .filter_map(|n| match n {
                        Node::Int(i) => Some(*i as f64),
                        Node::Float(f) => Some(*f),
                        _ => None,
                    })
                    .collect();
                match nums.as_slice() {
                    [a, b] if interval.contains(*a) && interval.contains(*b) && a <= b => Ok(Value::from(vec![*a, *b])),
                    _ => Err(wrong(node)),
                }
            }
            _ => Err(wrong(node)),
        },
        FieldKind::TextList => match node {
            Node::List(items) => items
                .iter()
                .map(|item| match item {
                    Node::Text(s) => Ok(Value::from(s.clone())),
                    _ => Err(wrong(node)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(wrong(node)),
        },
        FieldKind::Section(fields) => resolve_section(fields, node, key, registry),
        FieldKind::Plugin(family) => {
            let (kind, rest) = match node {
                Node::Text(kind) => (kind.clone(), None),
                Node::Map(map) => match map.get("kind") {
                    Some(Node::Text(kind)) => (kind.clone(), Some(map)),
                    Some(Node::Override(kind)) => (kind.trim_matches('"').to_string(), Some(map)),
                    Some(other) => {
                        return Err(ConfigError::WrongType { key: join(key, "kind"), expected: format!("the name of a {}", family.noun()), got: other.brief(), plugin: String::new() })
                    }
                    None if matches!(field.default, DefaultValue::Text(_)) => {
                        let DefaultValue::Text(default) = field.default else { unreachable!() };
                        (default.to_string(), Some(map))
                    }
                    None => {
                        let names = registry.names(family);
                        return Err(ConfigError::Missing { key: join(key, "kind"), doc: format!("one of: {}", names.join(", ")) });
                    }
                },
                other => return Err(wrong(other)),
            };
            let fields = registry.fields(family, &kind).map_err(|e| match e {
                RegistryError::Unknown { noun, name, registered, .. } => ConfigError::UnknownPlugin { noun: noun.to_string(), name, place: format!(" (at `{key}.kind`)"), registered },
                e => ConfigError::Registry(e),
            })?;
            let mut settings = match rest {
                Some(map) => {
                    let mut m = map.clone();
                    m.remove("kind");
                    Node::Map(m)
                }
                None => Node::empty_map(),
            };
            // A `kind` switched on the command line drops the file's settings of the old
            // plugin that the new one does not have; everything else must be declared.
            let switched = matches!(node, Node::Map(m) if matches!(m.get("kind"), Some(Node::Override(_))));
            if let Node::Map(m) = &mut settings {
                if switched {
                    let mut dropped = Vec::new();
                    m.retain(|k, v| {
                        let keep = matches!(v, Node::Override(_)) || fields.iter().any(|f| f.name == k.as_str());
                        if !keep {
                            dropped.push(k.clone());
                        }
                        keep
                    });
                    if !dropped.is_empty() {
                        tracing::warn!("settings of the file's `{key}` that {} `{kind}` does not have are ignored: {}", family.noun(), dropped.join(", "));
                    }
                }
                if let Some(bad) = m.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
                    let mut valid = vec!["kind".to_string()];
                    valid.extend(fields.iter().map(|f| f.name.to_string()));
                    return Err(unknown_key(key, bad, &format!("{} (for {} `{kind}`)", valid.join(", "), family.noun())));
                }
            }
            // a value the plugin's own declaration refuses names the plugin too
            let mut resolved = resolve_section(fields, &std::mem::replace(&mut settings, Node::Null), key, registry).map_err(|e| match e {
                ConfigError::WrongType { key, expected, got, plugin } if plugin.is_empty() => {
                    ConfigError::WrongType { key, expected, got, plugin: format!(" (a setting of {} `{kind}`)", family.short()) }
                }
                e => e,
            })?;
            if let Value::Object(m) = &mut resolved {
                m.insert("kind".to_string(), Value::from(kind));
            }
            Ok(resolved)
        }
    }
}

/// Reads command-line text as a value of `kind`; `None` if it cannot be one.
fn parse_override(kind: FieldKind, text: &str) -> Option<Node> {
    let t = text.trim();
    let is_none = matches!(t, "None" | "none" | "null");
    let int = |s: &str| s.replace('_', "").parse::<i64>().ok().map(Node::Int);
    let float = |s: &str| s.replace('_', "").parse::<f64>().ok().map(Node::Float);
    let unquote = |s: &str| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).to_string();
    match kind {
        FieldKind::Int { .. } => int(t),
        FieldKind::OptionalInt { .. } => if is_none { Some(Node::Null) } else { int(t) },
        FieldKind::Float(_) => float(t),
        FieldKind::OptionalFloat(_) => if is_none { Some(Node::Null) } else { float(t) },
        FieldKind::Bool => t.parse::<bool>().ok().map(Node::Bool),
        FieldKind::Text | FieldKind::Choice(_) | FieldKind::Device | FieldKind::Plugin(_) => Some(Node::Text(unquote(t))),
        FieldKind::Range(_) => {
            let inner = t.trim_start_matches(['(', '[']).trim_end_matches([')', ']']);
            let parts: Vec<Node> = inner.split(',').map(|p| float(p.trim())).collect::<Option<_>>()?;
            Some(Node::List(parts))
        }
        FieldKind::TextList => Some(Node::List(t.trim_start_matches(['(', '[']).trim_end_matches([')', ']']).split(',').map(|p| p.trim()).filter(|p| !p.is_empty()).map(|p| Node::Text(unquote(p))).collect())),
        FieldKind::Section(_) => None,
    }
}

fn unknown_key(path: &str, key: &str, valid: &str) -> ConfigError {
    let place = if path.is_empty() { String::new() } else { format!(" in `{path}`") };
    ConfigError::UnknownKey { key: join(path, key), place, valid: valid.to_string() }
}

fn key_list(fields: &[FieldSpec]) -> String {
    fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn display_path(path: &str) -> String {
    if path.is_empty() { "(top level)".to_string() } else { path.to_string() }
}
