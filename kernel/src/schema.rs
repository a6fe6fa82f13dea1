//! Self-describing settings: every configurable thing (a plugin, a config section)
//! declares its fields once, and validation, overrides, `elmlab list` and the
//! resolved config all read that one declaration.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The type of one setting, as users see it in `elmlab list` and in error messages.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A whole number `>= min`.
    Int { min: i64 },
    /// A real number `>= min` (use `f64::NEG_INFINITY` for none).
    Float { min: f64 },
    Bool,
    Text,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// A device: `cpu` or `cuda:N` (whether this build can use it is checked when a
    /// model is built, so that configs stay portable between builds).
    Device,
    /// A whole number `>= min`, or `None` (the plugin then derives a value).
    OptionalInt { min: i64 },
    /// A real number, or `None` (off).
    OptionalFloat { min: f64 },
    /// Two real numbers `(low, high)` with `low <= high`.
    Range,
    /// A list of texts, `["a", "b"]`.
    TextList,
    /// A nested group of fields.
    Section(&'static [FieldSpec]),
    /// A registered plugin chosen by its `kind`; its fields come from the registry.
    Plugin(PluginFamily),
}

/// Which registry a plugin section draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFamily {
    Neuron,
    Connectivity,
    Task,
}

impl PluginFamily {
    pub fn noun(self) -> &'static str {
        match self {
            PluginFamily::Neuron => "neuron model",
            PluginFamily::Connectivity => "connectivity pattern",
            PluginFamily::Task => "task",
        }
    }
}

/// A default value that can live in a `static` declaration.
#[derive(Clone, Copy, Debug)]
pub enum DefaultValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'static str),
    None,
    Range(f64, f64),
    EmptyList,
    /// No default: the user must give it.
    Required,
    /// Sections and plugin sections are filled from their own fields.
    Nested,
}

impl DefaultValue {
    pub fn to_json(self) -> Option<Value> {
        match self {
            DefaultValue::Int(v) => Some(Value::from(v)),
            DefaultValue::Float(v) => Some(Value::from(v)),
            DefaultValue::Bool(v) => Some(Value::from(v)),
            DefaultValue::Text(v) => Some(Value::from(v)),
            DefaultValue::None => Some(Value::Null),
            DefaultValue::Range(a, b) => Some(Value::from(vec![a, b])),
            DefaultValue::EmptyList => Some(Value::Array(Vec::new())),
            DefaultValue::Required | DefaultValue::Nested => None,
        }
    }
}

/// One declared setting.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub default: DefaultValue,
    pub doc: &'static str,
}

impl FieldSpec {
    pub const fn new(name: &'static str, kind: FieldKind, default: DefaultValue, doc: &'static str) -> Self {
        FieldSpec { name, kind, default, doc }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldKind::Int { min } => write!(f, "integer >= {min}"),
            FieldKind::Float { min } if min.is_finite() => write!(f, "number >= {min}"),
            FieldKind::Float { .. } => write!(f, "number"),
            FieldKind::Bool => write!(f, "true or false"),
            FieldKind::Text => write!(f, "text"),
            FieldKind::Choice(words) => write!(f, "one of {}", words.join(", ")),
            FieldKind::Device => write!(f, "{}", crate::device::DEVICE_SPELLINGS),
            FieldKind::OptionalInt { min } => write!(f, "integer >= {min} or None"),
            FieldKind::OptionalFloat { min } if min.is_finite() => write!(f, "number >= {min} or None"),
            FieldKind::OptionalFloat { .. } => write!(f, "number or None"),
            FieldKind::Range => write!(f, "pair of numbers (low, high)"),
            FieldKind::TextList => write!(f, "list of texts"),
            FieldKind::Section(_) => write!(f, "section"),
            FieldKind::Plugin(family) => write!(f, "{} (by `kind`)", family.noun()),
        }
    }
}

/// A plugin's resolved settings: every declared field present, each with the declared
/// type. Plugins read them with the typed getters; a getter on an undeclared field is
/// a plugin bug and says so.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    values: BTreeMap<String, Value>,
}

impl Settings {
    pub fn from_map(values: BTreeMap<String, Value>) -> Self {
        Settings { values }
    }
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.values
    }
    fn get(&self, key: &str) -> &Value {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("plugin read undeclared setting `{key}`; declared: {:?}", self.values.keys().collect::<Vec<_>>()))
    }
    pub fn int(&self, key: &str) -> i64 {
        self.get(key).as_i64().unwrap_or_else(|| panic!("setting `{key}` is not an integer"))
    }
    pub fn usize(&self, key: &str) -> usize {
        self.int(key) as usize
    }
    pub fn float(&self, key: &str) -> f64 {
        self.get(key).as_f64().unwrap_or_else(|| panic!("setting `{key}` is not a number"))
    }
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).as_bool().unwrap_or_else(|| panic!("setting `{key}` is not a bool"))
    }
    pub fn text(&self, key: &str) -> &str {
        self.get(key).as_str().unwrap_or_else(|| panic!("setting `{key}` is not text"))
    }
    pub fn optional_usize(&self, key: &str) -> Option<usize> {
        let v = self.get(key);
        if v.is_null() { None } else { Some(self.usize(key)) }
    }
    pub fn optional_float(&self, key: &str) -> Option<f64> {
        let v = self.get(key);
        if v.is_null() { None } else { Some(self.float(key)) }
    }
    pub fn range(&self, key: &str) -> (f64, f64) {
        let v = self.get(key).as_array().unwrap_or_else(|| panic!("setting `{key}` is not a range"));
        (v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(0.0))
    }
}

/// The defaults of a field list, as a `Settings` (used by tests and by `list`).
pub fn default_settings(fields: &[FieldSpec]) -> Settings {
    let mut map = BTreeMap::new();
    for f in fields {
        if let Some(v) = f.default.to_json() {
            map.insert(f.name.to_string(), v);
        }
    }
    Settings::from_map(map)
}

/// Human/JSON description of a field list, for `elmlab list`.
pub fn describe_fields(fields: &[FieldSpec]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "type": f.kind.to_string(),
                "default": f.default.to_json(),
                "doc": f.doc,
            })
        })
        .collect()
}
