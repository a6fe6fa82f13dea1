//! The entries plugins register, and the typed way to make one: a settings struct
//! (`#[derive(Settings)]`) that says what it builds.

use crate::connectivity::Connectivity;
use crate::error::PluginError;
use crate::neuron::NeuronModel;
use crate::schema::FieldSpec;
use crate::settings::{DeclaredSettings, Settings};
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

/// A neuron model's settings, and what they build. Register it with
/// `inventory::submit! { NeuronEntry::of::<MySettings>() }`.
pub trait NeuronPlugin: DeclaredSettings + 'static {
    /// The name configs choose it by (`kind`).
    const NAME: &'static str;
    /// One line for `elmlab list`.
    const DOC: &'static str;
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError>;
}

/// A connectivity pattern's settings, and what they build.
pub trait ConnectivityPlugin: DeclaredSettings + 'static {
    const NAME: &'static str;
    const DOC: &'static str;
    fn build(self) -> Result<Box<dyn Connectivity>, PluginError>;
}

/// A task's settings, and what they build.
pub trait TaskPlugin: DeclaredSettings + 'static {
    const NAME: &'static str;
    const DOC: &'static str;
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError>;
}

fn neuron_from<P: NeuronPlugin>(s: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    P::from_settings(s)?.build()
}

fn connectivity_from<P: ConnectivityPlugin>(s: &Settings) -> Result<Box<dyn Connectivity>, PluginError> {
    P::from_settings(s)?.build()
}

fn task_from<P: TaskPlugin>(s: &Settings, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
    P::from_settings(s)?.build(ctx)
}

impl NeuronEntry {
    /// The entry of a typed neuron plugin.
    pub const fn of<P: NeuronPlugin>() -> Self {
        NeuronEntry { name: P::NAME, doc: P::DOC, fields: P::FIELDS, build: neuron_from::<P> }
    }
}

impl ConnectivityEntry {
    pub const fn of<P: ConnectivityPlugin>() -> Self {
        ConnectivityEntry { name: P::NAME, doc: P::DOC, fields: P::FIELDS, build: connectivity_from::<P> }
    }
}

impl TaskEntry {
    pub const fn of<P: TaskPlugin>() -> Self {
        TaskEntry { name: P::NAME, doc: P::DOC, fields: P::FIELDS, build: task_from::<P> }
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
