//! Config loading, overrides and refusals, against plugins registered here for the test.

use super::*;
use crate::error::ConfigError;
use elmlab_core::error::PluginError;
use elmlab_core::registry::{ConnectivityEntry, NeuronEntry, Registry, TaskEntry};
use elmlab_core::settings::{Choice, DeclaredSettings, Settings};

#[derive(Choice, Clone, Copy, Debug, PartialEq)]
enum Activation {
    Relu,
    Identity,
}

/// The settings of a neuron registered for these tests.
#[derive(Settings, Clone, Debug, PartialEq)]
struct TestNeuron {
    /// memory units
    #[setting(default = 5, min = 1)]
    memory: usize,
    /// derived when None
    #[setting(min = 1)]
    mlp_hidden: Option<usize>,
    /// timescales
    #[setting(default = (1.0, 500.0))]
    tau: (f64, f64),
    /// g
    #[setting(default = "relu")]
    activation: Activation,
    /// tau_r
    #[setting(default = 5.0, min = 0.0)]
    high_pass: Option<f64>,
    /// train tau
    #[setting(default = false)]
    learn_tau: bool,
}

#[derive(Settings)]
struct TestPattern {
    /// rho
    #[setting(default = 0.25, min = 0.0)]
    recurrent_share: f64,
}

#[derive(Settings)]
struct TestTask {
    /// d
    #[setting(default = 40, min = 0)]
    delay: usize,
}

fn no_neuron(_: &Settings) -> Result<Box<dyn elmlab_core::neuron::NeuronModel>, PluginError> {
    Err(PluginError::new("not buildable in this test"))
}
fn no_conn(_: &Settings) -> Result<Box<dyn elmlab_core::connectivity::Connectivity>, PluginError> {
    Err(PluginError::new("not buildable in this test"))
}
fn no_task(_: &Settings, _: &elmlab_core::task::TaskContext) -> Result<Box<dyn elmlab_core::task::Task>, PluginError> {
    Err(PluginError::new("not buildable in this test"))
}
inventory::submit! { NeuronEntry { name: "cfgtest_neuron", doc: "test", fields: TestNeuron::FIELDS, build: no_neuron } }
inventory::submit! { NeuronEntry { name: "cfgtest_other", doc: "test", fields: &[], build: no_neuron } }
inventory::submit! { ConnectivityEntry { name: "random_fan_in", doc: "test", fields: TestPattern::FIELDS, build: no_conn } }
inventory::submit! { TaskEntry { name: "cfgtest_task", doc: "test", fields: TestTask::FIELDS, build: no_task } }

const BASE: &str = r#"
// a comment
(
    name: "t",
    seed: 3,
    task: (kind: "cfgtest_task"),
    model: (neuron: (kind: "cfgtest_neuron", memory: 9), units: 57),
    train: (steps: 10, optimizer: (kind: "adamax", lr: 5e-3)),
)
"#;

fn load(overrides: &[&str]) -> Result<ResolvedConfig, ConfigError> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ResolvedConfig::from_text(BASE, "test.ron", &o, &Registry::builtin())
}

fn err(overrides: &[&str]) -> String {
    load(overrides).unwrap_err().to_string()
}

#[test]
fn file_values_and_defaults_resolve() {
    let c = load(&[]).unwrap().config;
    assert_eq!((c.name.as_str(), c.seed, c.model.units, c.train.steps), ("t", 3, Some(57), 10));
    assert_eq!(c.train.optimizer.kind, OptimizerKind::Adamax);
    assert_eq!(c.train.optimizer.lr, 5e-3);
    assert_eq!(c.train.optimizer.beta2, 0.999);
    assert_eq!(c.train.clip_norm, Some(1.0));
    assert_eq!(c.model.connectivity.kind, "random_fan_in");
    let s = TestNeuron::from_settings(&c.model.neuron.settings()).unwrap();
    assert_eq!((s.memory, s.mlp_hidden, s.tau), (9, None, (1.0, 500.0)));
    assert_eq!(TestTask::from_settings(&c.task.settings()).unwrap().delay, 40);
}

#[test]
fn overrides_are_typed_against_the_schema() {
    let c = load(&["model.units=12", "train.optimizer.lr=1e-3", "model.neuron.memory=4", "model.neuron.tau=(2,50)", "model.neuron.high_pass=None", "model.neuron.learn_tau=true", "model.neuron.activation=identity", "model.connectivity.recurrent_share=0.8", "train.clip_norm=none", "name=\"other\""])
        .unwrap()
        .config;
    assert_eq!(c.model.units, Some(12));
    assert_eq!(c.train.optimizer.lr, 1e-3);
    let s = TestNeuron::from_settings(&c.model.neuron.settings()).unwrap();
    assert_eq!((s.memory, s.tau, s.high_pass, s.learn_tau, s.activation), (4, (2.0, 50.0), None, true, Activation::Identity));
    assert_eq!(TestPattern::from_settings(&c.model.connectivity.settings()).unwrap().recurrent_share, 0.8);
    assert_eq!(c.train.clip_norm, None);
    assert_eq!(c.name, "other");
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let e = err(&["model.unit=3"]);
    assert!(e.contains("unknown key `model.unit`") && e.contains("neuron, connectivity, units, budget"), "{e}");
    let e = err(&["train.optimizer.learning_rate=3"]);
    assert!(e.contains("kind, lr, beta1, beta2, eps, weight_decay"), "{e}");
    let e = err(&["model.neuron.memroy=3"]);
    assert!(e.contains("model.neuron.memroy") && e.contains("kind, memory, mlp_hidden, tau, activation, high_pass, learn_tau"), "{e}");
    let e = err(&["seeed=3"]);
    assert!(e.contains("name, seed, device, out_dir, task, model, train"), "{e}");
}

#[test]
fn unknown_keys_in_the_file_are_refused_too() {
    let text = BASE.replace("seed: 3,", "seed: 3, sede: 4,");
    let e = ResolvedConfig::from_text(&text, "f.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("unknown key `sede`"), "{e}");
}

#[test]
fn ill_typed_values_name_the_expected_type() {
    let e = err(&["model.units=many"]);
    assert!(e.contains("`model.units` expects integer >= 1 or None, got `many`"), "{e}");
    let e = err(&["train.steps=0"]);
    assert!(e.contains("`train.steps` expects integer >= 1"), "{e}");
    let e = err(&["train.optimizer.kind=sgd"]);
    assert!(e.contains("one of adam, adamax, adamw"), "{e}");
    let e = err(&["model.neuron.tau=(5,1)"]);
    assert!(e.contains("pair of numbers"), "{e}");
    let e = err(&["model.neuron.learn_tau=yes"]);
    assert!(e.contains("true or false"), "{e}");
    let e = err(&["train=3"]);
    assert!(e.contains("`train` expects a section"), "{e}");
    let e = err(&["train.steps.x=3"]);
    assert!(e.contains("train.steps"), "{e}");
}

#[test]
fn unknown_plugins_list_the_registered_ones() {
    let e = err(&["model.neuron.kind=elm9"]);
    assert!(e.contains("unknown neuron model `elm9`") && e.contains("cfgtest_neuron, cfgtest_other"), "{e}");
    let e = err(&["task.kind=nope"]);
    assert!(e.contains("unknown task `nope`") && e.contains("cfgtest_task"), "{e}");
    // switching the plugin from the command line drops the file's settings of the old
    // one, but a setting given beside it must belong to the new one
    let c = load(&["model.neuron.kind=cfgtest_other"]).unwrap().config;
    assert_eq!(c.model.neuron.kind, "cfgtest_other");
    assert!(c.model.neuron.fields.is_empty());
    let e = err(&["model.neuron.kind=cfgtest_other", "model.neuron.memory=3"]);
    assert!(e.contains("model.neuron.memory") && e.contains("for neuron model `cfgtest_other`"), "{e}");
    // in a file, a setting the plugin does not have is an error
    let text = BASE.replace("kind: \"cfgtest_neuron\", memory: 9", "kind: \"cfgtest_other\", memory: 9");
    let e = ResolvedConfig::from_text(&text, "f.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("unknown key `model.neuron.memory`"), "{e}");
}

#[test]
fn units_and_budget_replace_each_other_from_the_command_line() {
    let c = load(&["model.budget=5000"]).unwrap().config;
    assert_eq!((c.model.units, c.model.budget), (None, Some(5000)));
    let text = BASE.replace("units: 57", "units: 57, budget: 100");
    let e = ResolvedConfig::from_text(&text, "f.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn malformed_input_is_refused_not_panicked() {
    let e = err(&["no_equals_sign"]);
    assert!(e.contains("key=value"), "{e}");
    let e = ResolvedConfig::from_text("(name: ", "f.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("f.ron") && e.contains("RON"), "{e}");
    let e = ResolvedConfig::from_text("(name: \"x\")", "f.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("`task` is required") && e.contains("cfgtest_task"), "{e}");
}

#[test]
fn resolved_config_round_trips_through_ron() {
    let a = load(&["model.neuron.high_pass=None", "train.optimizer.lr=0.1"]).unwrap();
    let b = ResolvedConfig::from_text(&a.to_ron(), "resolved.ron", &[], &Registry::builtin()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn plugin_lists_resolve_round_trip_and_refuse_other_types() {
    assert_eq!(load(&[]).unwrap().config.plugins, Vec::<String>::new());
    let listed = load(&["plugins=[libs/a.so, \"name\"]"]).unwrap();
    assert_eq!(listed.config.plugins, ["libs/a.so", "name"]);
    for resolved in [load(&[]).unwrap(), listed] {
        let again = ResolvedConfig::from_text(&resolved.to_ron(), "resolved.ron", &[], &Registry::builtin()).unwrap();
        assert_eq!(resolved, again);
    }
    let e = ResolvedConfig::from_text(&BASE.replace("seed: 3,", "seed: 3, plugins: \"x.so\","), "t.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("`plugins` expects list of texts"), "{e}");
    let e = ResolvedConfig::from_text(&BASE.replace("seed: 3,", "seed: 3, plugins: [1],"), "t.ron", &[], &Registry::builtin()).unwrap_err().to_string();
    assert!(e.contains("`plugins` expects list of texts"), "{e}");
}

#[test]
fn relative_plugin_paths_are_anchored_at_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.ron");
    std::fs::write(&path, BASE.replace("seed: 3,", "seed: 3, plugins: [\"libs/a.so\", \"by_name\", \"/abs/b.so\"],")).unwrap();
    let root = dir.path().canonicalize().unwrap();
    let want = [root.join("libs/a.so").display().to_string(), "by_name".into(), "/abs/b.so".into()];
    assert_eq!(ResolvedConfig::plugins_of(&path, &[]).unwrap(), want);
    let resolved = ResolvedConfig::load(&path, &[], &Registry::builtin()).unwrap();
    assert_eq!(resolved.config.plugins, want);
    assert_eq!(resolved.tree["plugins"], serde_json::json!(want));
}
