//! Settings declared once. A plugin writes its settings as a struct and derives
//! [`DeclaredSettings`] with `#[derive(Settings)]`: the derive turns the field types,
//! their doc comments and `#[setting(...)]` attributes into the schema ([`FieldSpec`]s)
//! and reads the typed struct back from resolved values.
//!
//! ```ignore
//! #[derive(Settings, Clone, Debug)]
//! pub struct LinearSettings {
//!     /// synapses per unit k_c asked of the connectivity pattern
//!     #[setting(default = 300, min = 1)]
//!     pub synapses: usize,
//!     /// leak timescales in steps, log-spaced over the units (fixed)
//!     #[setting(default = (1.0, 500.0), above = 0.0)]
//!     pub tau: (f64, f64),
//!     /// output non-linearity g
//!     #[setting(default = "relu")]
//!     pub activation: Activation,   // #[derive(Choice)] enum Activation { Relu, Identity }
//! }
//! ```
//!
//! Attributes: `default = …` (a number, text, `true`/`false`, `(low, high)` or `None`;
//! fields without one are required, or `None`/empty/nested for optional settings,
//! lists and sections), `min`/`above` and `max`/`below` (inclusive/exclusive bounds),
//! and `plugin = neuron|connectivity|task` for a [`PluginChoice`] field.

use crate::error::{SettingProblem, SettingsError};
use crate::schema::{FieldKind, FieldSpec, Interval};
use serde_json::Map;
pub use serde_json::Value;
use std::collections::BTreeMap;

pub use elmlab_derive::{Choice, Settings};

/// Resolved settings: every declared field present, as JSON values (the form the
/// resolved config, overrides and run directories share).
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
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
    /// Sets one value (tests, and code that derives settings from others).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.values.insert(key.to_string(), value.into());
    }

    /// The value of `field`, checked against its declared kind and read as `T`.
    pub fn read<T: SettingValue>(&self, field: &FieldSpec) -> Result<T, SettingsError> {
        let error = |problem| SettingsError { key: field.name.to_string(), problem };
        let value = self.values.get(field.name).ok_or_else(|| error(SettingProblem::Missing))?;
        let wrong = || error(SettingProblem::WrongType { expected: field.kind.to_string(), got: brief(value) });
        if !field.kind.accepts(value) {
            return Err(wrong());
        }
        T::read(value).map_err(|_| wrong())
    }
}

/// A JSON value as users wrote it, for messages.
fn brief(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The defaults of a field list, as `Settings`.
pub fn default_settings(fields: &[FieldSpec]) -> Settings {
    let mut map = BTreeMap::new();
    for f in fields {
        let value = match f.kind {
            FieldKind::Section(inner) => Some(Value::Object(default_settings(inner).values.into_iter().collect())),
            _ => f.default.to_json(),
        };
        if let Some(v) = value {
            map.insert(f.name.to_string(), v);
        }
    }
    Settings::from_map(map)
}

/// A Rust type a setting can have: how it is read from and written to a resolved value.
pub trait SettingValue: Sized {
    /// `Err` with what was wrong; [`Settings::read`] has checked the kind already.
    fn read(v: &Value) -> Result<Self, String>;
    fn write(&self) -> Value;
}

/// A setting type whose schema kind follows from the type alone (`#[setting(...)]`
/// bounds are applied on top).
pub trait SettingType: SettingValue {
    const KIND: FieldKind;
}

/// A settings struct: its schema and how to read it. Derive it with `#[derive(Settings)]`.
pub trait DeclaredSettings: Sized {
    /// One entry per field, in declaration order.
    const FIELDS: &'static [FieldSpec];
    /// The struct from resolved settings; every value is checked against its kind.
    fn from_settings(s: &Settings) -> Result<Self, SettingsError>;
    /// The resolved settings this struct stands for.
    fn to_settings(&self) -> Settings;
    /// The struct with every field at its default; fails if a field has none.
    fn defaults() -> Result<Self, SettingsError> {
        Self::from_settings(&default_settings(Self::FIELDS))
    }
}

/// A setting that is one of a few words (an enum). Derive it with `#[derive(Choice)]`:
/// the words are the variants' names in snake case (`#[choice(rename = "…")]` to
/// change one).
pub trait Choice: Sized + Copy + 'static {
    const WORDS: &'static [&'static str];
    fn word(self) -> &'static str;
    fn from_word(word: &str) -> Option<Self>;
}

/// A plugin chosen by name, with its resolved settings (`(kind: "elm", memory: 5)`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PluginChoice {
    pub kind: String,
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

impl PluginChoice {
    pub fn settings(&self) -> Settings {
        Settings::from_map(self.fields.clone())
    }
}

impl SettingValue for PluginChoice {
    fn read(v: &Value) -> Result<Self, String> {
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())
    }
    fn write(&self) -> Value {
        let mut m: Map<String, Value> = self.fields.clone().into_iter().collect();
        m.insert("kind".into(), Value::from(self.kind.clone()));
        Value::Object(m)
    }
}

macro_rules! whole_numbers {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn read(v: &Value) -> Result<Self, String> {
                v.as_i64().and_then(|i| <$t>::try_from(i).ok()).ok_or_else(|| format!("not a whole number in range of {}", stringify!($t)))
            }
            fn write(&self) -> Value {
                Value::from(*self as i64)
            }
        }
        impl SettingType for $t {
            const KIND: FieldKind = FieldKind::Int { min: <$t>::MIN as i64, max: if (<$t>::MAX as u64) > (i64::MAX as u64) { i64::MAX } else { <$t>::MAX as i64 } };
        }
        impl SettingValue for Option<$t> {
            fn read(v: &Value) -> Result<Self, String> {
                if v.is_null() { Ok(None) } else { <$t as SettingValue>::read(v).map(Some) }
            }
            fn write(&self) -> Value {
                self.map_or(Value::Null, |x| x.write())
            }
        }
        impl SettingType for Option<$t> {
            const KIND: FieldKind = match <$t as SettingType>::KIND {
                FieldKind::Int { min, max } => FieldKind::OptionalInt { min, max },
                other => other,
            };
        }
    )*};
}
whole_numbers!(usize, u64, u32, i64);

impl SettingValue for f64 {
    fn read(v: &Value) -> Result<Self, String> {
        v.as_f64().ok_or_else(|| "not a number".into())
    }
    fn write(&self) -> Value {
        Value::from(*self)
    }
}
impl SettingType for f64 {
    const KIND: FieldKind = FieldKind::Float(Interval::ANY);
}

impl SettingValue for Option<f64> {
    fn read(v: &Value) -> Result<Self, String> {
        if v.is_null() { Ok(None) } else { f64::read(v).map(Some) }
    }
    fn write(&self) -> Value {
        self.map_or(Value::Null, Value::from)
    }
}
impl SettingType for Option<f64> {
    const KIND: FieldKind = FieldKind::OptionalFloat(Interval::ANY);
}

impl SettingValue for bool {
    fn read(v: &Value) -> Result<Self, String> {
        v.as_bool().ok_or_else(|| "not true or false".into())
    }
    fn write(&self) -> Value {
        Value::from(*self)
    }
}
impl SettingType for bool {
    const KIND: FieldKind = FieldKind::Bool;
}

impl SettingValue for String {
    fn read(v: &Value) -> Result<Self, String> {
        v.as_str().map(str::to_string).ok_or_else(|| "not text".into())
    }
    fn write(&self) -> Value {
        Value::from(self.clone())
    }
}
impl SettingType for String {
    const KIND: FieldKind = FieldKind::Text;
}

impl SettingValue for (f64, f64) {
    fn read(v: &Value) -> Result<Self, String> {
        match v.as_array().map(|a| a.as_slice()) {
            Some([a, b]) => a.as_f64().zip(b.as_f64()).ok_or_else(|| "not two numbers".into()),
            _ => Err("not a pair".into()),
        }
    }
    fn write(&self) -> Value {
        Value::from(vec![self.0, self.1])
    }
}
impl SettingType for (f64, f64) {
    const KIND: FieldKind = FieldKind::Range(Interval::ANY);
}

impl SettingValue for Vec<String> {
    fn read(v: &Value) -> Result<Self, String> {
        v.as_array().ok_or("not a list")?.iter().map(String::read).collect()
    }
    fn write(&self) -> Value {
        Value::from(self.clone())
    }
}
impl SettingType for Vec<String> {
    const KIND: FieldKind = FieldKind::TextList;
}

impl SettingValue for crate::device::DeviceChoice {
    fn read(v: &Value) -> Result<Self, String> {
        v.as_str().ok_or("not text")?.parse()
    }
    fn write(&self) -> Value {
        Value::from(self.to_string())
    }
}
impl SettingType for crate::device::DeviceChoice {
    const KIND: FieldKind = FieldKind::Device;
}

/// Reads a section (`#[derive(Settings)]` implements [`SettingValue`] with this).
pub fn read_section<S: DeclaredSettings>(v: &Value) -> Result<S, String> {
    let map = v.as_object().ok_or("not a section")?;
    S::from_settings(&Settings::from_map(map.clone().into_iter().collect())).map_err(|e| e.to_string())
}

/// Writes a section.
pub fn write_section<S: DeclaredSettings>(s: &S) -> Value {
    Value::Object(s.to_settings().values.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DefaultValue;

    #[derive(Choice, Clone, Copy, Debug, PartialEq)]
    enum Shape {
        Relu2,
        SoftPlus,
        #[choice(rename = "adamw")]
        AdamW,
    }

    #[derive(Settings, Clone, Debug, PartialEq)]
    struct Inner {
        /// a rate
        #[setting(default = 1e-3, min = 0.0)]
        lr: f64,
    }

    #[derive(Settings, Clone, Debug, PartialEq)]
    struct Example {
        /// memory units
        /// per neuron
        #[setting(default = 5, min = 1)]
        memory: usize,
        /// derived when None
        #[setting(min = 1)]
        hidden: Option<usize>,
        /// a share
        #[setting(default = 0, min = 0.0, below = 1.0)]
        share: f64,
        /// a filter, on by default
        #[setting(default = 5.0, above = 0.0)]
        filter: Option<f64>,
        /// timescales
        #[setting(default = (1.0, 500.0))]
        tau: (f64, f64),
        /// the shape
        #[setting(default = "soft_plus")]
        shape: Shape,
        /// libraries
        libs: Vec<String>,
        /// a nested section
        inner: Inner,
        /// must be given
        name: String,
    }

    /// Fields shared by several plugins, declared once.
    #[derive(Settings, Clone, Debug, PartialEq)]
    struct Shared {
        /// where the data are
        #[setting(default = "data")]
        dir: String,
    }

    #[derive(Settings, Clone, Debug, PartialEq)]
    struct WithShared {
        /// first
        #[setting(default = 1, min = 1)]
        first: usize,
        #[setting(flatten)]
        shared: Shared,
        /// last
        #[setting(default = true)]
        last: bool,
    }

    /// A flattened struct's fields are declared at the level of the struct that holds it.
    #[test]
    fn flattened_fields_are_declared_in_place() {
        let names: Vec<&str> = WithShared::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names, ["first", "dir", "last"]);
        let mut s = default_settings(WithShared::FIELDS);
        s.set("dir", "elsewhere");
        let w = WithShared::from_settings(&s).unwrap();
        assert_eq!(w, WithShared { first: 1, shared: Shared { dir: "elsewhere".into() }, last: true });
        assert_eq!(w.to_settings(), s);
    }

    /// The derive writes the schema a hand-written table would have: names, kinds with
    /// bounds, defaults of the field's type, and the doc comment as one line.
    #[test]
    fn the_derive_declares_each_field_once() {
        let f = Example::FIELDS;
        let names: Vec<&str> = f.iter().map(|f| f.name).collect();
        assert_eq!(names, ["memory", "hidden", "share", "filter", "tau", "shape", "libs", "inner", "name"]);
        let kinds: Vec<String> = f.iter().map(|f| f.kind.to_string()).collect();
        assert_eq!(kinds[..7], ["integer >= 1", "integer >= 1 or None", "number >= 0 and < 1", "number > 0 or None", "pair of numbers (low, high)", "one of relu2, soft_plus, adamw", "list of texts"]);
        assert_eq!(f[0].doc, "memory units per neuron");
        assert!(matches!(f[0].default, DefaultValue::Int(5)));
        assert!(matches!(f[1].default, DefaultValue::None));
        // a whole number written for a real setting is a real number
        assert!(matches!(f[2].default, DefaultValue::Float(x) if x == 0.0));
        assert!(matches!(f[4].default, DefaultValue::Range(a, b) if a == 1.0 && b == 500.0));
        assert!(matches!(f[6].default, DefaultValue::EmptyList));
        assert!(matches!(f[7].kind, FieldKind::Section(inner) if inner[0].name == "lr"));
        assert!(matches!(f[8].default, DefaultValue::Required));
        crate::conformance::check_fields(f);
    }

    #[test]
    fn settings_read_back_typed_and_bad_values_are_named() {
        let mut s = default_settings(Example::FIELDS);
        assert!(Example::defaults().unwrap_err().to_string().contains("setting `name` is missing"));
        s.set("name", "x");
        let e = Example::from_settings(&s).unwrap();
        assert_eq!(e, Example { memory: 5, hidden: None, share: 0.0, filter: Some(5.0), tau: (1.0, 500.0), shape: Shape::SoftPlus, libs: vec![], inner: Inner { lr: 1e-3 }, name: "x".into() });
        assert_eq!(Example::from_settings(&e.to_settings()).unwrap(), e);
        s.set("share", 1.0);
        assert_eq!(Example::from_settings(&s).unwrap_err().to_string(), "setting `share` expects number >= 0 and < 1, got `1.0`");
        s.set("share", 0.5);
        s.set("shape", "tanh");
        assert!(Example::from_settings(&s).unwrap_err().to_string().contains("expects one of relu2, soft_plus, adamw, got `tanh`"));
        s.set("shape", "adamw");
        assert_eq!(Example::from_settings(&s).unwrap().shape, Shape::AdamW);
        s.set("memory", 0);
        assert!(Example::from_settings(&s).unwrap_err().to_string().contains("setting `memory` expects integer >= 1, got `0`"));
    }
}
