//! The experiment config: its declared schema and the typed view the trainer reads.

use super::node::{split_override, to_ron, Node};
use super::resolve::resolve_section;
use crate::device::DeviceChoice;
use crate::error::ConfigError;
use crate::registry::Registry;
use crate::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, PluginFamily, Settings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub static OPTIMIZER_FIELDS: &[F] = &[
    F::new("kind", K::Choice(&["adam", "adamax", "adamw"]), D::Text("adam"), "update rule (training.md)"),
    F::new("lr", K::Float { min: 0.0 }, D::Float(1e-3), "peak learning rate"),
    F::new("beta1", K::Float { min: 0.0 }, D::Float(0.9), "first-moment decay"),
    F::new("beta2", K::Float { min: 0.0 }, D::Float(0.999), "second-moment decay"),
    F::new("eps", K::Float { min: 0.0 }, D::Float(1e-8), "denominator guard"),
    F::new("weight_decay", K::Float { min: 0.0 }, D::Float(0.0), "decoupled weight decay (adamw only)"),
];

pub static SCHEDULE_FIELDS: &[F] = &[
    F::new("warmup_steps", K::Int { min: 0 }, D::Int(0), "linear warm-up from 0 over this many steps"),
    F::new("decay", K::Choice(&["cosine", "linear", "constant"]), D::Text("cosine"), "shape after warm-up"),
    F::new("final_lr", K::Float { min: 0.0 }, D::Float(0.0), "learning rate at the last step, as a fraction of the peak"),
];

pub static TRAIN_FIELDS: &[F] = &[
    F::new("steps", K::Int { min: 1 }, D::Int(1000), "optimiser steps"),
    F::new("batch", K::Int { min: 1 }, D::Int(16), "sequences per step"),
    F::new("optimizer", K::Section(OPTIMIZER_FIELDS), D::Nested, "optimiser"),
    F::new("schedule", K::Section(SCHEDULE_FIELDS), D::Nested, "learning-rate schedule"),
    F::new("clip_norm", K::OptionalFloat { min: 0.0 }, D::Float(1.0), "global L2 gradient-norm limit (None = off)"),
    F::new("label_smoothing", K::Float { min: 0.0 }, D::Float(0.0), "targets (1-a)*onehot + a/C"),
    F::new("log_every", K::Int { min: 1 }, D::Int(10), "steps between metric lines"),
    F::new("eval_every", K::Int { min: 1 }, D::Int(100), "steps between validation passes"),
    F::new("checkpoint_every", K::Int { min: 1 }, D::Int(100), "steps between checkpoints"),
    F::new("eval_batch", K::Int { min: 1 }, D::Int(64), "sequences per evaluation batch"),
];

pub static MODEL_FIELDS: &[F] = &[
    F::new("neuron", K::Plugin(PluginFamily::Neuron), D::Required, "neuron model, by `kind`"),
    F::new("connectivity", K::Plugin(PluginFamily::Connectivity), D::Text("random_fan_in"), "connectivity pattern, by `kind`"),
    F::new("units", K::OptionalInt { min: 1 }, D::None, "hidden units N (give this or `budget`)"),
    F::new("budget", K::OptionalInt { min: 1 }, D::None, "trainable-parameter budget; N is solved as the largest that fits"),
];

pub static EXPERIMENT_FIELDS: &[F] = &[
    F::new("name", K::Text, D::Text("experiment"), "run name (the run directory is named after it)"),
    F::new("seed", K::Int { min: 0 }, D::Int(0), "seed of every random choice"),
    F::new("device", K::Device, D::Text("cpu"), "where tensors live (cuda:N needs a CUDA build; --device overrides)"),
    F::new("out_dir", K::Text, D::Text("runs"), "parent folder of run directories"),
    F::new("task", K::Plugin(PluginFamily::Task), D::Required, "task, by `kind`"),
    F::new("model", K::Section(MODEL_FIELDS), D::Nested, "the network"),
    F::new("train", K::Section(TRAIN_FIELDS), D::Nested, "training recipe"),
    F::new("plugins", K::TextList, D::EmptyList, "plugin libraries to load first: paths (relative to this file) or names searched in ELMLAB_PLUGIN_PATH"),
];

/// A plugin chosen by name with its resolved settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginChoice {
    pub kind: String,
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl PluginChoice {
    pub fn settings(&self) -> Settings {
        Settings::from_map(self.fields.clone())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OptimizerConfig {
    pub kind: String,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScheduleConfig {
    pub warmup_steps: u64,
    pub decay: String,
    pub final_lr: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub clip_norm: Option<f64>,
    pub label_smoothing: f64,
    pub log_every: u64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    pub eval_batch: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub neuron: PluginChoice,
    pub connectivity: PluginChoice,
    pub units: Option<usize>,
    pub budget: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExperimentConfig {
    pub name: String,
    pub seed: u64,
    pub device: String,
    pub out_dir: String,
    pub task: PluginChoice,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Plugin libraries the config needs; relative paths are made absolute when a file is loaded.
    pub plugins: Vec<String>,
}

impl ExperimentConfig {
    /// The device, as the schema has already checked it.
    pub fn device_choice(&self) -> Result<DeviceChoice, ConfigError> {
        self.device.parse().map_err(ConfigError::Invalid)
    }
}

/// A checked config: the typed view plus the resolved tree it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedConfig {
    pub config: ExperimentConfig,
    pub tree: serde_json::Value,
}

impl ResolvedConfig {
    /// Reads a RON file, applies `key=value` overrides, checks everything against the
    /// schema and the registry. Nothing runs before this succeeds.
    /// Plugin paths in the file are made absolute (relative to the file's folder), so the
    /// config stored in a run directory still finds them.
    pub fn load(path: &Path, overrides: &[String], registry: &Registry) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut tree = raw_tree(&text, &path.display().to_string(), overrides)?;
        anchor_plugins(&mut tree, path)?;
        Self::from_tree(&tree, registry)
    }

    /// The `plugins` list of a config file (overrides applied), read before the rest of the
    /// file is checked: the plugins it names must be loaded first. Paths are anchored
    /// like [`ResolvedConfig::load`] does.
    pub fn plugins_of(path: &Path, overrides: &[String]) -> Result<Vec<String>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut tree = raw_tree(&text, &path.display().to_string(), overrides)?;
        anchor_plugins(&mut tree, path)?;
        plugins_in(&tree)
    }

    pub fn from_text(text: &str, origin: &str, overrides: &[String], registry: &Registry) -> Result<Self, ConfigError> {
        Self::from_tree(&raw_tree(text, origin, overrides)?, registry)
    }
}

/// A config file's text as a raw tree with `key=value` overrides applied.
fn raw_tree(text: &str, origin: &str, overrides: &[String]) -> Result<Node, ConfigError> {
    let mut tree = Node::parse_ron(text, origin)?;
    let mut keys = Vec::new();
    for o in overrides {
        let (key, value) = split_override(o)?;
        tree.set_override(key, value)?;
        keys.push(key);
    }
    // `units` and `budget` exclude each other: overriding one replaces the other.
    for (given, other) in [("model.units", "model.budget"), ("model.budget", "model.units")] {
        if keys.contains(&given) && !keys.contains(&other) {
            tree.set_override(other, "None")?;
        }
    }
    Ok(tree)
}

/// The `plugins` list of a raw experiment tree, checked (a list of texts; empty if absent).
pub fn plugins_in(tree: &Node) -> Result<Vec<String>, ConfigError> {
    let Some(given) = tree.get("plugins") else { return Ok(Vec::new()) };
    let field = EXPERIMENT_FIELDS.iter().find(|f| f.name == "plugins").expect("declared above");
    let list = resolve_section(std::slice::from_ref(field), &Node::Map([("plugins".to_string(), given.clone())].into()), "", &Registry::empty())?;
    Ok(serde_json::from_value(list["plugins"].clone()).unwrap_or_default())
}

/// Makes the relative plugin paths of a raw experiment tree relative to the folder of
/// `config` (the file the tree came from), so the tree can be written elsewhere.
pub fn anchor_plugins(tree: &mut Node, config: &Path) -> Result<(), ConfigError> {
    if tree.get("plugins").is_none() {
        return Ok(());
    }
    let anchored = plugins_in(tree)?.iter().map(|p| Node::Text(anchor_plugin(p, config))).collect();
    tree.set(&["plugins"], Node::List(anchored));
    Ok(())
}

/// A plugin entry that is a relative path, made relative to the folder of `config`
/// instead (names and absolute paths stay as they are).
fn anchor_plugin(given: &str, config: &Path) -> String {
    if !crate::plugin::is_path(given) || Path::new(given).is_absolute() {
        return given.to_string();
    }
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.join(given).display().to_string()
}

impl ResolvedConfig {
    /// Checks an already-built raw tree (overrides applied).
    pub fn from_tree(tree: &Node, registry: &Registry) -> Result<Self, ConfigError> {
        let resolved = resolve_section(EXPERIMENT_FIELDS, tree, "", registry)?;
        let config: ExperimentConfig = serde_json::from_value(resolved.clone()).map_err(|e| ConfigError::Invalid(format!("internal: resolved config does not fit its type: {e}")))?;
        match (config.model.units, config.model.budget) {
            (Some(_), Some(_)) => return Err(ConfigError::Invalid("give `model.units` or `model.budget`, not both (set the other to None)".into())),
            (None, None) => return Err(ConfigError::Invalid("give `model.units` (hidden units) or `model.budget` (trainable parameters to fill)".into())),
            _ => {}
        }
        Ok(ResolvedConfig { config, tree: resolved })
    }

    /// The resolved config as RON; loading it gives the same config back.
    pub fn to_ron(&self) -> String {
        to_ron(&self.tree)
    }
}
