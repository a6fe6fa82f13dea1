//! The plugin registry. Compiled-in plugins register with `inventory::submit!`; the
//! registry is a plain list so that entries from shared libraries loaded at run time
//! (which carry their own copy of inventory's list) can be added beside them.

use crate::connectivity::Connectivity;
use crate::error::{ConfigError, PluginError};
use crate::neuron::NeuronModel;
use crate::schema::{describe_fields, FieldSpec, PluginFamily, Settings};
use crate::task::{Task, TaskContext};

pub struct NeuronEntry {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldSpec],
    pub build: fn(&Settings) -> Result<Box<dyn NeuronModel>, PluginError>,
}

pub struct ConnectivityEntry {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldSpec],
    pub build: fn(&Settings) -> Result<Box<dyn Connectivity>, PluginError>,
}

pub struct TaskEntry {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldSpec],
    pub build: fn(&Settings, &TaskContext) -> Result<Box<dyn Task>, PluginError>,
}

inventory::collect!(NeuronEntry);
inventory::collect!(ConnectivityEntry);
inventory::collect!(TaskEntry);

/// Where an entry came from, shown by `elmlab list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Library(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built in"),
            Origin::Library(path) => f.write_str(path),
        }
    }
}

/// What every entry kind shares, so lookups and listings are written once.
pub trait Described {
    fn name(&self) -> &'static str;
    fn doc(&self) -> &'static str;
    fn fields(&self) -> &'static [FieldSpec];
}

macro_rules! described {
    ($t:ty) => {
        impl Described for $t {
            fn name(&self) -> &'static str {
                self.name
            }
            fn doc(&self) -> &'static str {
                self.doc
            }
            fn fields(&self) -> &'static [FieldSpec] {
                self.fields
            }
        }
    };
}
described!(NeuronEntry);
described!(ConnectivityEntry);
described!(TaskEntry);

/// Entries of one family, sorted by name.
pub struct Family<E: 'static> {
    family: PluginFamily,
    entries: Vec<(&'static E, Origin)>,
}

impl<E: Described + 'static> Family<E> {
    fn new(family: PluginFamily, builtin: impl Iterator<Item = &'static E>) -> Self {
        let mut f = Family { family, entries: Vec::new() };
        for e in builtin {
            // A duplicate compiled-in name is a build mistake; keep the first.
            let _ = f.add(e, Origin::BuiltIn);
        }
        f
    }

    /// Adds an entry; a name that is already registered is refused with both origins.
    pub fn add(&mut self, entry: &'static E, origin: Origin) -> Result<(), ConfigError> {
        if let Some((_, existing)) = self.entries.iter().find(|(e, _)| e.name() == entry.name()) {
            return Err(ConfigError::Invalid(format!(
                "{} `{}` from {origin} is already registered by {existing}",
                self.family.noun(),
                entry.name()
            )));
        }
        self.entries.push((entry, origin));
        self.entries.sort_by_key(|(e, _)| e.name());
        Ok(())
    }

    /// Where the entry `name` came from, if it is registered.
    pub fn origin_of(&self, name: &str) -> Option<&Origin> {
        self.entries.iter().find(|(e, _)| e.name() == name).map(|(_, o)| o)
    }

    /// What an entry of this family is called in messages ("neuron model", ...).
    pub fn noun(&self) -> &'static str {
        self.family.noun()
    }

    pub fn get(&self, name: &str) -> Result<&'static E, ConfigError> {
        self.entries.iter().find(|(e, _)| e.name() == name).map(|(e, _)| *e).ok_or_else(|| ConfigError::UnknownPlugin {
            noun: self.family.noun().to_string(),
            name: name.to_string(),
            place: String::new(),
            registered: self.names().join(", "),
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(e, _)| e.name()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static E, &Origin)> {
        self.entries.iter().map(|(e, o)| (*e, o))
    }

    pub fn describe(&self) -> Vec<serde_json::Value> {
        self.iter()
            .map(|(e, origin)| {
                serde_json::json!({
                    "name": e.name(),
                    "doc": e.doc(),
                    "origin": origin.to_string(),
                    "fields": describe_fields(e.fields()),
                })
            })
            .collect()
    }
}

/// Every plugin the process knows.
pub struct Registry {
    pub neurons: Family<NeuronEntry>,
    pub connectivity: Family<ConnectivityEntry>,
    pub tasks: Family<TaskEntry>,
}

impl Registry {
    /// The compiled-in plugins. The binary must name every plugin crate, or the linker
    /// drops their registrations.
    pub fn builtin() -> Self {
        Registry {
            neurons: Family::new(PluginFamily::Neuron, inventory::iter::<NeuronEntry>.into_iter()),
            connectivity: Family::new(PluginFamily::Connectivity, inventory::iter::<ConnectivityEntry>.into_iter()),
            tasks: Family::new(PluginFamily::Task, inventory::iter::<TaskEntry>.into_iter()),
        }
    }

    /// A registry without entries (for checks that involve no plugin).
    pub fn empty() -> Self {
        Registry {
            neurons: Family::new(PluginFamily::Neuron, std::iter::empty()),
            connectivity: Family::new(PluginFamily::Connectivity, std::iter::empty()),
            tasks: Family::new(PluginFamily::Task, std::iter::empty()),
        }
    }

    pub fn names(&self, family: PluginFamily) -> Vec<&'static str> {
        match family {
            PluginFamily::Neuron => self.neurons.names(),
            PluginFamily::Connectivity => self.connectivity.names(),
            PluginFamily::Task => self.tasks.names(),
        }
    }

    /// Field declarations of the plugin `name` in `family`.
    pub fn fields(&self, family: PluginFamily, name: &str) -> Result<&'static [FieldSpec], ConfigError> {
        Ok(match family {
            PluginFamily::Neuron => self.neurons.get(name)?.fields,
            PluginFamily::Connectivity => self.connectivity.get(name)?.fields,
            PluginFamily::Task => self.tasks.get(name)?.fields,
        })
    }

    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "neurons": self.neurons.describe(),
            "connectivity": self.connectivity.describe(),
            "tasks": self.tasks.describe(),
        })
    }
}
