//! Self-describing settings: every configurable thing (a plugin, a config section)
//! declares its fields once, and validation, overrides, `elmlab list` and the resolved
//! config all read that one declaration. Declarations are written with
//! `#[derive(Settings)]` ([`crate::settings`]); this file is what they produce.

use serde_json::Value;
use std::fmt;

/// The values a number may take: `low` to `high`, each end open or closed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub low_open: bool,
    pub high: f64,
    pub high_open: bool,
}

impl Interval {
    /// Every finite number.
    pub const ANY: Interval = Interval { low: f64::NEG_INFINITY, low_open: false, high: f64::INFINITY, high_open: false };

    pub fn contains(&self, x: f64) -> bool {
        let above = if self.low_open { x > self.low } else { x >= self.low };
        let below = if self.high_open { x < self.high } else { x <= self.high };
        x.is_finite() && above && below
    }

    fn is_any(&self) -> bool {
        self.low == f64::NEG_INFINITY && self.high == f64::INFINITY
    }
}

impl fmt::Display for Interval {
    /// `>= 0`, `> 0`, `>= 0 and < 1`, `<= 1` (empty for [`Interval::ANY`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.low.is_finite() {
            parts.push(format!("{} {}", if self.low_open { ">" } else { ">=" }, self.low));
        }
        if self.high.is_finite() {
            parts.push(format!("{} {}", if self.high_open { "<" } else { "<=" }, self.high));
        }
        f.write_str(&parts.join(" and "))
    }
}

/// The type of one setting, as users see it in `elmlab list` and in error messages.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// A real number in the interval.
    Float(Interval),
    Bool,
    Text,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// A device: `cpu` or `cuda:N` (whether this build can use it is checked when a
    /// model is built, so that configs stay portable between builds).
    Device,
    /// A whole number in `min..=max`, or `None` (the plugin then derives a value).
    OptionalInt { min: i64, max: i64 },
    /// A real number in the interval, or `None` (off).
    OptionalFloat(Interval),
    /// Two real numbers `(low, high)` with `low <= high`, both in the interval.
    Range(Interval),
    /// A list of texts, `["a", "b"]`.
    TextList,
    /// A nested group of fields.
    Section(&'static [FieldSpec]),
    /// A registered plugin chosen by its `kind`; its fields come from the registry.
    Plugin(PluginFamily),
}

impl FieldKind {
    /// The kind with its lower bound raised to `x` (inclusive); kinds without numbers are unchanged.
    pub const fn at_least(self, x: f64) -> Self {
        self.bound(x, false, true)
    }
    /// ... to above `x` (exclusive).
    pub const fn above(self, x: f64) -> Self {
        self.bound(x, true, true)
    }
    /// The kind with its upper bound lowered to `x` (inclusive).
    pub const fn at_most(self, x: f64) -> Self {
        self.bound(x, false, false)
    }
    /// ... to below `x` (exclusive).
    pub const fn below(self, x: f64) -> Self {
        self.bound(x, true, false)
    }

    const fn bound(self, x: f64, open: bool, lower: bool) -> Self {
        const fn on(i: Interval, x: f64, open: bool, lower: bool) -> Interval {
            if lower {
                Interval { low: x, low_open: open, ..i }
            } else {
                Interval { high: x, high_open: open, ..i }
            }
        }
        // integer bounds: an open bound moves to the next whole number
        const fn int(min: i64, max: i64, x: f64, open: bool, lower: bool) -> (i64, i64) {
            let x = x as i64;
            if lower {
                (if open { x + 1 } else { x }, max)
            } else {
                (min, if open { x - 1 } else { x })
            }
        }
        match self {
            FieldKind::Int { min, max } => {
                let (min, max) = int(min, max, x, open, lower);
                FieldKind::Int { min, max }
            }
            FieldKind::OptionalInt { min, max } => {
                let (min, max) = int(min, max, x, open, lower);
                FieldKind::OptionalInt { min, max }
            }
            FieldKind::Float(i) => FieldKind::Float(on(i, x, open, lower)),
            FieldKind::OptionalFloat(i) => FieldKind::OptionalFloat(on(i, x, open, lower)),
            FieldKind::Range(i) => FieldKind::Range(on(i, x, open, lower)),
            other => other,
        }
    }

    /// Whether a resolved value (JSON) is of this kind. Sections and plugins are checked
    /// field by field where they are resolved, so any object passes here.
    pub fn accepts(&self, v: &Value) -> bool {
        let int_in = |min: i64, max: i64| v.as_i64().is_some_and(|i| (min..=max).contains(&i));
        match self {
            FieldKind::Int { min, max } => int_in(*min, *max),
            FieldKind::OptionalInt { min, max } => v.is_null() || int_in(*min, *max),
            FieldKind::Float(i) => v.as_f64().is_some_and(|x| i.contains(x)),
            FieldKind::OptionalFloat(i) => v.is_null() || v.as_f64().is_some_and(|x| i.contains(x)),
            FieldKind::Bool => v.is_boolean(),
            FieldKind::Text => v.is_string(),
            FieldKind::Choice(words) => v.as_str().is_some_and(|s| words.contains(&s)),
            FieldKind::Device => v.as_str().is_some_and(|s| s.parse::<crate::device::DeviceChoice>().is_ok()),
            FieldKind::Range(i) => match v.as_array().map(|a| a.as_slice()) {
                Some([a, b]) => matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a <= b && i.contains(a) && i.contains(b)),
                _ => false,
            },
            FieldKind::TextList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            FieldKind::Section(_) | FieldKind::Plugin(_) => v.is_object(),
        }
    }
}

/// Which registry a plugin section draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFamily {
    Neuron,
    Connectivity,
    Task,
}

impl PluginFamily {
    /// The one-word name messages put before a plugin's name (`neuron `elm``).
    pub fn short(self) -> &'static str {
        match self {
            PluginFamily::Neuron => "neuron",
            PluginFamily::Connectivity => "connectivity",
            PluginFamily::Task => "task",
        }
    }

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

    /// The default as the field's kind stores it: a whole number written for a real
    /// setting becomes a real number.
    pub const fn fit(self, kind: FieldKind) -> Self {
        match (self, kind) {
            (DefaultValue::Int(i), FieldKind::Float(_) | FieldKind::OptionalFloat(_)) => DefaultValue::Float(i as f64),
            (other, _) => other,
        }
    }

    /// What a field without a written default takes: `None` for optional settings, an
    /// empty list, its own fields for a section; anything else must be given.
    pub const fn absent(kind: FieldKind) -> Self {
        match kind {
            FieldKind::OptionalInt { .. } | FieldKind::OptionalFloat(_) => DefaultValue::None,
            FieldKind::TextList => DefaultValue::EmptyList,
            FieldKind::Section(_) => DefaultValue::Nested,
            _ => DefaultValue::Required,
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
        let ints = |min: i64, max: i64| match (min > i64::MIN, max < i64::MAX) {
            (true, true) => format!(" >= {min} and <= {max}"),
            (true, false) => format!(" >= {min}"),
            (false, true) => format!(" <= {max}"),
            (false, false) => String::new(),
        };
        let bounds = |i: &Interval| if i.is_any() { String::new() } else { format!(" {i}") };
        match self {
            FieldKind::Int { min, max } => write!(f, "integer{}", ints(*min, *max)),
            FieldKind::Float(i) => write!(f, "number{}", bounds(i)),
            FieldKind::Bool => write!(f, "true or false"),
            FieldKind::Text => write!(f, "text"),
            FieldKind::Choice(words) => write!(f, "one of {}", words.join(", ")),
            FieldKind::Device => write!(f, "{}", crate::device::DEVICE_SPELLINGS),
            FieldKind::OptionalInt { min, max } => write!(f, "integer{} or None", ints(*min, *max)),
            FieldKind::OptionalFloat(i) => write!(f, "number{} or None", bounds(i)),
            FieldKind::Range(i) if i.is_any() => write!(f, "pair of numbers (low, high)"),
            FieldKind::Range(i) => write!(f, "pair of numbers (low, high), both {i}"),
            FieldKind::TextList => write!(f, "list of texts"),
            FieldKind::Section(_) => write!(f, "section"),
            FieldKind::Plugin(family) => write!(f, "{} (by `kind`)", family.noun()),
        }
    }
}

/// `parts` one after the other, as one array: the declaration of a settings struct with
/// flattened groups of fields (`#[setting(flatten)]`). `N` must be the total length.
pub const fn concat_fields<const N: usize>(parts: &[&[FieldSpec]]) -> [FieldSpec; N] {
    let mut out = [FieldSpec::new("", FieldKind::Bool, DefaultValue::Required, ""); N];
    let (mut i, mut k) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            j += 1;
            k += 1;
        }
        i += 1;
    }
    assert!(k == N, "concat_fields: N is not the total length");
    out
}

/// The declared field `name` (what `#[derive(Settings)]` reads each field with).
pub fn field<'a>(fields: &'a [FieldSpec], name: &str) -> &'a FieldSpec {
    fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("`{name}` is not declared"))
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

#[cfg(test)]
mod tests {
    use super::*;

    const ANY_INT: FieldKind = FieldKind::Int { min: i64::MIN, max: i64::MAX };

    /// Bounds read as users see them, and values are checked against them.
    #[test]
    fn bounds_describe_and_check_values() {
        let share = FieldKind::Float(Interval::ANY).at_least(0.0).below(1.0);
        assert_eq!(share.to_string(), "number >= 0 and < 1");
        assert!(share.accepts(&Value::from(0.0)) && share.accepts(&Value::from(0.99)));
        assert!(!share.accepts(&Value::from(1.0)) && !share.accepts(&Value::from(-0.1)) && !share.accepts(&Value::from("x")));
        let count = ANY_INT.at_least(1.0);
        assert_eq!(count.to_string(), "integer >= 1");
        assert!(count.accepts(&Value::from(1)) && !count.accepts(&Value::from(0)) && !count.accepts(&Value::from(1.5)));
        // an open integer bound is the next whole number
        assert_eq!(ANY_INT.above(2.0).at_most(9.0).to_string(), "integer >= 3 and <= 9");
        let tau = FieldKind::Range(Interval::ANY).above(0.0);
        assert_eq!(tau.to_string(), "pair of numbers (low, high), both > 0");
        assert!(tau.accepts(&serde_json::json!([1.0, 5.0])) && !tau.accepts(&serde_json::json!([0.0, 5.0])) && !tau.accepts(&serde_json::json!([5.0, 1.0])));
        assert_eq!(FieldKind::OptionalFloat(Interval::ANY).above(0.0).to_string(), "number > 0 or None");
        assert!(FieldKind::OptionalFloat(Interval::ANY).accepts(&Value::Null));
        assert_eq!(FieldKind::Float(Interval::ANY).to_string(), "number");
    }

    #[test]
    fn defaults_fit_their_kind() {
        assert!(matches!(DefaultValue::Int(2).fit(FieldKind::Float(Interval::ANY)), DefaultValue::Float(x) if x == 2.0));
        assert!(matches!(DefaultValue::Int(2).fit(ANY_INT), DefaultValue::Int(2)));
        assert!(matches!(DefaultValue::absent(FieldKind::OptionalInt { min: 1, max: i64::MAX }), DefaultValue::None));
        assert!(matches!(DefaultValue::absent(FieldKind::Text), DefaultValue::Required));
    }
}
