//! The experiment config: its declared schema and the typed view the trainer reads.

use super::node::{split_override, to_ron, Node};
use super::resolve::resolve_section;
use crate::error::ConfigError;
use elmlab_core::device::DeviceChoice;
use elmlab_core::registry::Registry;
use elmlab_core::schema::FieldSpec;
use elmlab_core::settings::{Choice, DeclaredSettings, PluginChoice, Settings};
use std::path::Path;

/// The update rule (training.md).
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    Adamax,
    #[choice(rename = "adamw")]
    AdamW,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// update rule (training.md)
    #[setting(default = "adam")]
    pub kind: OptimizerKind,
    /// peak learning rate
    #[setting(default = 1e-3, min = 0.0)]
    pub lr: f64,
    /// first-moment decay
    #[setting(default = 0.9, min = 0.0)]
    pub beta1: f64,
    /// second-moment decay
    #[setting(default = 0.999, min = 0.0)]
    pub beta2: f64,
    /// denominator guard
    #[setting(default = 1e-8, min = 0.0)]
    pub eps: f64,
    /// decoupled weight decay (adamw only)
    #[setting(default = 0.0, min = 0.0)]
    pub weight_decay: f64,
}

/// The learning rate's shape after warm-up.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decay {
    Cosine,
    Linear,
    Constant,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// linear warm-up from 0 over this many steps
    #[setting(default = 0, min = 0)]
    pub warmup_steps: u64,
    /// shape after warm-up
    #[setting(default = "cosine")]
    pub decay: Decay,
    /// learning rate at the last step, as a fraction of the peak
    #[setting(default = 0.0, min = 0.0)]
    pub final_lr: f64,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// optimiser steps
    #[setting(default = 1000, min = 1)]
    pub steps: u64,
    /// sequences per step
    #[setting(default = 16, min = 1)]
    pub batch: usize,
    /// optimiser
    pub optimizer: OptimizerConfig,
    /// learning-rate schedule
    pub schedule: ScheduleConfig,
    /// global L2 gradient-norm limit (None = off)
    #[setting(default = 1.0, min = 0.0)]
    pub clip_norm: Option<f64>,
    /// targets (1-a)*onehot + a/C
    #[setting(default = 0.0, min = 0.0)]
    pub label_smoothing: f64,
    /// steps between metric lines
    #[setting(default = 10, min = 1)]
    pub log_every: u64,
    /// steps between validation passes
    #[setting(default = 100, min = 1)]
    pub eval_every: u64,
    /// steps between checkpoints
    #[setting(default = 100, min = 1)]
    pub checkpoint_every: u64,
    /// checkpoints kept (the newest; a resume falls back to an older one if the newest is damaged)
    #[setting(default = 3, min = 1)]
    pub keep_checkpoints: usize,
    /// sequences per evaluation batch
    #[setting(default = 64, min = 1)]
    pub eval_batch: usize,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// neuron model, by `kind`
    #[setting(plugin = neuron)]
    pub neuron: PluginChoice,
    /// connectivity pattern, by `kind`
    #[setting(plugin = connectivity, default = "random_fan_in")]
    pub connectivity: PluginChoice,
    /// hidden units N (give this or `budget`)
    #[setting(min = 1)]
    pub units: Option<usize>,
    /// trainable-parameter budget; N is solved as the largest that fits
    #[setting(min = 1)]
    pub budget: Option<usize>,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ExperimentConfig {
    /// run name (the run directory is named after it)
    #[setting(default = "experiment")]
    pub name: String,
    /// seed of every random choice
    #[setting(default = 0, min = 0)]
    pub seed: u64,
    /// where tensors live (cuda:N needs a CUDA build; --device overrides)
    #[setting(default = "cpu")]
    pub device: DeviceChoice,
    /// parent folder of run directories
    #[setting(default = "runs")]
    pub out_dir: String,
    /// task, by `kind`
    #[setting(plugin = task)]
    pub task: PluginChoice,
    /// the network
    pub model: ModelConfig,
    /// training recipe
    pub train: TrainConfig,
    /// plugin libraries to load first: paths (relative to this file) or names searched in ELMLAB_PLUGIN_PATH
    pub plugins: Vec<String>,
}

/// The declaration of the whole experiment config.
pub fn experiment_fields() -> &'static [FieldSpec] {
    ExperimentConfig::FIELDS
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
    let field = experiment_fields().iter().find(|f| f.name == "plugins").expect("declared above");
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
    if !elmlab_core::plugin::is_path(given) || Path::new(given).is_absolute() {
        return given.to_string();
    }
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.join(given).display().to_string()
}

impl ResolvedConfig {
    /// Checks an already-built raw tree (overrides applied).
    pub fn from_tree(tree: &Node, registry: &Registry) -> Result<Self, ConfigError> {
        let resolved = resolve_section(experiment_fields(), tree, "", registry)?;
        let map = resolved.as_object().cloned().unwrap_or_default().into_iter().collect();
        let config = ExperimentConfig::from_settings(&Settings::from_map(map)).map_err(|source| ConfigError::Internal { source })?;
        match (config.model.units, config.model.budget) {
            (Some(_), Some(_)) => return Err(ConfigError::UnitsAndBudget),
            (None, None) => return Err(ConfigError::NoSize),
            _ => {}
        }
        Ok(ResolvedConfig { config, tree: resolved })
    }

    /// The resolved config as RON; loading it gives the same config back.
    pub fn to_ron(&self) -> String {
        to_ron(&self.tree)
    }
}
