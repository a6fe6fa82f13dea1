//! The raw config tree: what the RON file says, plus `key=value` overrides, before it
//! is checked against the schema.

use crate::error::ConfigError;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Map(BTreeMap<String, Node>),
    List(Vec<Node>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Null,
    /// A command-line value, parsed once the schema says what type it must have.
    Override(String),
}

impl Node {
    pub fn empty_map() -> Node {
        Node::Map(BTreeMap::new())
    }

    /// Parses RON text. Structs (`(a: 1)`) and maps (`{"a": 1}`) both become maps;
    /// `Some(x)` is `x`; `None` and `()` are null.
    pub fn parse_ron(text: &str, origin: &str) -> Result<Node, ConfigError> {
        let value: ron::Value = ron::Options::default()
            .from_str(text)
            .map_err(|e| ConfigError::Syntax { path: origin.to_string(), message: e.to_string() })?;
        from_ron(value, origin)
    }

    /// The value at `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// Sets `path` to `value`, creating sections on the way (replacing non-sections).
    pub fn set(&mut self, path: &[&str], value: Node) {
        let Some((last, lead)) = path.split_last() else {
            *self = value;
            return;
        };
        let mut node = self;
        for key in lead {
            if !matches!(node, Node::Map(_)) {
                *node = Node::empty_map();
            }
            let Node::Map(map) = node else { unreachable!() };
            node = map.entry(key.to_string()).or_insert_with(Node::empty_map);
        }
        if !matches!(node, Node::Map(_)) {
            *node = Node::empty_map();
        }
        if let Node::Map(map) = node {
            map.insert(last.to_string(), value);
        }
    }

    /// Short text of the value for error messages.
    pub fn brief(&self) -> String {
        match self {
            Node::Map(_) => "a section".into(),
            Node::List(items) => format!("a list of {}", items.len()),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => format!("{f:?}"),
            Node::Text(s) => format!("\"{s}\""),
            Node::Null => "None".into(),
            Node::Override(s) => s.clone(),
        }
    }

    /// Sets `path` (dotted) to an override value, creating sections on the way. A
    /// plugin given by name only (`connectivity: "dense"`) opens into `(kind: "dense")`.
    pub fn set_override(&mut self, path: &str, value: &str) -> Result<(), ConfigError> {
        let keys: Vec<&str> = path.split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(ConfigError::BadOverride { text: format!("{path}={value}") });
        }
        let mut node = self;
        for (depth, key) in keys.iter().enumerate() {
            if let Node::Text(kind) | Node::Override(kind) = node {
                let kind = std::mem::take(kind);
                let was_override = matches!(node, Node::Override(_));
                let mut map = BTreeMap::new();
                map.insert("kind".to_string(), if was_override { Node::Override(kind) } else { Node::Text(kind) });
                *node = Node::Map(map);
            }
            let Node::Map(map) = node else {
                return Err(ConfigError::WrongType {
                    key: keys[..depth].join("."),
                    expected: "a section (it has no key `".to_string() + key + "`)",
                    got: node.brief(),
                    plugin: String::new(),
                });
            };
            node = map.entry(key.to_string()).or_insert_with(Node::empty_map);
        }
        *node = Node::Override(value.to_string());
        Ok(())
    }
}

fn from_ron(value: ron::Value, origin: &str) -> Result<Node, ConfigError> {
    use ron::value::Number;
    Ok(match value {
        ron::Value::Bool(b) => Node::Bool(b),
        ron::Value::Number(Number::Integer(i)) => Node::Int(i),
        ron::Value::Number(Number::Float(f)) => Node::Float(f.get()),
        ron::Value::Char(c) => Node::Text(c.to_string()),
        ron::Value::String(s) => Node::Text(s),
        ron::Value::Option(None) | ron::Value::Unit => Node::Null,
        ron::Value::Option(Some(inner)) => from_ron(*inner, origin)?,
        ron::Value::Seq(items) => Node::List(items.into_iter().map(|v| from_ron(v, origin)).collect::<Result<_, _>>()?),
        ron::Value::Map(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map.into_iter() {
                let key = match k {
                    ron::Value::String(s) => s,
                    other => {
                        return Err(ConfigError::Syntax { path: origin.to_string(), message: format!("map keys must be names, got {other:?}") })
                    }
                };
                if out.insert(key.clone(), from_ron(v, origin)?).is_some() {
                    return Err(ConfigError::Syntax { path: origin.to_string(), message: format!("key `{key}` given twice") });
                }
            }
            Node::Map(out)
        }
    })
}

/// Splits `key=value`.
pub fn split_override(text: &str) -> Result<(&str, &str), ConfigError> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(ConfigError::BadOverride { text: text.to_string() }),
    }
}

/// Writes a resolved config (JSON tree) as RON that `parse_ron` reads back to the same tree.
pub fn to_ron(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_ron(value, 0, &mut out);
    out.push('\n');
    out
}

fn write_ron(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = "    ".repeat(indent + 1);
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(&b.to_string()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                // `{:?}` keeps a decimal point, so floats read back as floats.
                out.push_str(&format!("{:?}", n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        // `()` would read back as None: an empty list is `[]`.
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_ron(item, indent, out);
            }
            out.push(')');
        }
        Value::Object(map) => {
            out.push_str("(\n");
            for (k, v) in map {
                out.push_str(&pad);
                out.push_str(k);
                out.push_str(": ");
                write_ron(v, indent + 1, out);
                out.push_str(",\n");
            }
            out.push_str(&"    ".repeat(indent));
            out.push(')');
        }
    }
}
