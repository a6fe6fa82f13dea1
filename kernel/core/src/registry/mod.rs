//! The plugin registry. Compiled-in plugins register with `inventory::submit!`; the
//! registry is a plain list so that entries from shared libraries loaded at run time
//! (which carry their own copy of inventory's list) can be added beside them.

mod boundary;
mod entry;

pub use boundary::{within, Enter};
pub use entry::{ConnectivityEntry, ConnectivityPlugin, Described, NeuronEntry, NeuronPlugin, TaskEntry, TaskPlugin};

use crate::connectivity::Connectivity;
use crate::error::{PluginError, RegistryError};
use crate::neuron::NeuronModel;
use crate::schema::{describe_fields, FieldSpec, PluginFamily};
use crate::settings::Settings;
use crate::task::{Task, TaskContext};
use boundary::EnteredModel;

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

struct Registered<E: 'static> {
    entry: &'static E,
    origin: Origin,
    /// For library entries: how to call into the library.
    enter: Option<Enter>,
}

/// An entry found by name, ready to build what it registers.
pub struct Found<E: 'static> {
    pub entry: &'static E,
    enter: Option<Enter>,
}

impl Found<NeuronEntry> {
    /// The configured neuron model; a library's model is called through its boundary.
    pub fn build(&self, settings: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
        match self.enter {
            None => (self.entry.build)(settings),
            Some(enter) => {
                let inner = within(enter, || (self.entry.build)(settings))?;
                Ok(Box::new(EnteredModel { inner, enter }))
            }
        }
    }
}

impl Found<ConnectivityEntry> {
    pub fn build(&self, settings: &Settings) -> Result<Box<dyn Connectivity>, PluginError> {
        (self.entry.build)(settings)
    }
}

impl Found<TaskEntry> {
    pub fn build(&self, settings: &Settings, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        (self.entry.build)(settings, ctx)
    }
}

/// Entries of one family, sorted by name.
pub struct Family<E: 'static> {
    family: PluginFamily,
    entries: Vec<Registered<E>>,
}

impl<E: Described + 'static> Family<E> {
    fn new(family: PluginFamily, builtin: impl Iterator<Item = &'static E>) -> Self {
        let mut f = Family { family, entries: Vec::new() };
        for e in builtin {
            // A duplicate compiled-in name is a build mistake; keep the first.
            let _ = f.insert(e, Origin::BuiltIn, None);
        }
        f
    }

    fn insert(&mut self, entry: &'static E, origin: Origin, enter: Option<Enter>) -> Result<(), RegistryError> {
        if let Some(existing) = self.origin_of(entry.name()) {
            return Err(RegistryError::Duplicate { noun: self.family.noun(), name: entry.name().to_string(), origin: origin.to_string(), existing: existing.to_string() });
        }
        self.entries.push(Registered { entry, origin, enter });
        self.entries.sort_by_key(|r| r.entry.name());
        Ok(())
    }

    /// Adds a compiled-in entry; a name that is already registered is refused with both origins.
    pub fn add(&mut self, entry: &'static E, origin: Origin) -> Result<(), RegistryError> {
        self.insert(entry, origin, None)
    }

    /// Adds an entry of the library at `path`, whose code is called through `enter`.
    pub fn add_from_library(&mut self, entry: &'static E, path: &str, enter: Enter) -> Result<(), RegistryError> {
        self.insert(entry, Origin::Library(path.to_string()), Some(enter))
    }

    /// Where the entry `name` came from, if it is registered.
    pub fn origin_of(&self, name: &str) -> Option<&Origin> {
        self.entries.iter().find(|r| r.entry.name() == name).map(|r| &r.origin)
    }

    /// What an entry of this family is called in messages ("neuron model", ...).
    pub fn noun(&self) -> &'static str {
        self.family.noun()
    }

    pub fn get(&self, name: &str) -> Result<&'static E, RegistryError> {
        self.find(name).map(|f| f.entry)
    }

    /// The entry `name`, with how to call it.
    pub fn find(&self, name: &str) -> Result<Found<E>, RegistryError> {
        self.entries.iter().find(|r| r.entry.name() == name).map(|r| Found { entry: r.entry, enter: r.enter }).ok_or_else(|| RegistryError::Unknown {
            noun: self.family.noun(),
            name: name.to_string(),
            place: String::new(),
            registered: self.names().join(", "),
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|r| r.entry.name()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static E, &Origin)> {
        self.entries.iter().map(|r| (r.entry, &r.origin))
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
    pub fn fields(&self, family: PluginFamily, name: &str) -> Result<&'static [FieldSpec], RegistryError> {
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
