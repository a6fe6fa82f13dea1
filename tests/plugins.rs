//! Runtime plugins end to end: the example plugin (plugins/example-plugin) loaded from
//! its shared library, listed, trained, and the refusals of libraries that must not load.

mod common;

use common::{config, elmlab, s, text};
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::rundir::RunDir;
use elmlab_train::trainer::{train, Observer, Session, TrainOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

// The test links the plugin crate too (compiled in), to train the same code both ways.
use elmlab_connectivity as _;
use elmlab_example_plugin as _;

const LIBRARY: &str = "libelmlab_example_plugin.so";

/// The example plugin's shared library, built by `cargo test` beside the binary (in
/// `deps/`; a copy beside the binary from `cargo build` may be older, so the newest wins).
fn example_library() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_elmlab")).parent().unwrap().to_path_buf();
    [dir.join("deps").join(LIBRARY), dir.join(LIBRARY)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{LIBRARY} not found in {} (build it: cargo build -p elmlab-example-plugin)", dir.display()))
}

fn small_config(plugins: &str) -> String {
    format!(
        r#"(
    name: "plugin-small",
    seed: 3,
    plugins: [{plugins}],
    task: (kind: "copy_memory", alphabet: 3, length: 2, delay: 4, valid_batches: 2, test_batches: 2),
    model: (neuron: (kind: "tanh_rnn"), units: 12),
    train: (steps: 40, batch: 8, eval_batch: 8, optimizer: (kind: "adam", lr: 2e-2), log_every: 5, eval_every: 20, checkpoint_every: 20),
)"#
    )
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The numbers of a metrics line that depend on the model (not on the clock).
fn numbers(line: &Value) -> Vec<(String, f64)> {
    ["step", "loss", "accuracy", "grad_norm"].iter().filter_map(|k| line.get(*k).and_then(Value::as_f64).map(|v| (k.to_string(), v))).collect()
}

struct Quiet;
impl Observer for Quiet {}

#[test]
fn loaded_plugin_is_listed_and_trains_exactly_like_the_same_code_compiled_in() {
    let lib = example_library();
    let lib_dir = lib.parent().unwrap();
    let canonical = lib.canonicalize().unwrap().display().to_string();
    let dir = tempfile::tempdir().unwrap();

    // Listed, with the library as origin.
    let o = elmlab(&["--plugin", s(&lib), "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let origin = |family: &str, name: &str| listed[family].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["origin"].as_str().unwrap().to_string());
    assert_eq!(origin("neurons", "tanh_rnn").as_deref(), Some(canonical.as_str()));
    assert_eq!(origin("tasks", "copy_memory").as_deref(), Some(canonical.as_str()));
    assert_eq!(origin("neurons", "lstm").as_deref(), Some("built in"));
    let plain = elmlab(&["list"]);
    assert!(!text(&plain).contains("tanh_rnn"), "not loaded without --plugin");

    // Trained from a config that names the plugin; the name is found through ELMLAB_PLUGIN_PATH.
    let cfg = config(dir.path(), "plugin.ron", &small_config("\"elmlab_example_plugin\""));
    let loaded_run = dir.path().join("loaded");
    let o = Command::new(env!("CARGO_BIN_EXE_elmlab")).args(["-v", "train", s(&cfg), "--out", s(&loaded_run)]).env("ELMLAB_PLUGIN_PATH", lib_dir).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // The plugin's own log events reach the host's log: stderr, and train.log once it is open.
    assert!(text(&o).contains("copy_memory: 2 symbols of 3 over a delay of 4"), "{}", text(&o));
    let log = std::fs::read_to_string(loaded_run.join("train.log")).unwrap();
    assert!(log.contains("copy_memory: 2 fixed valid batches of 8"), "{log}");

    // The same config trained in this process, where the plugin crate is compiled in:
    // every number equal. Tensor ids of the library and of the host are apart; were they
    // not, gradients of different tensors would mix and these numbers would differ.
    let registry = Registry::builtin();
    let resolved = ResolvedConfig::load(&cfg, &[], &registry).unwrap();
    let mut session = Session::prepare(resolved, &registry).unwrap();
    let linked_run = dir.path().join("linked");
    train(&mut session, &RunDir::create(&linked_run).unwrap(), &TrainOptions::default(), &mut Quiet).unwrap();
    let (loaded, linked) = (metrics(&loaded_run), metrics(&linked_run));
    assert_eq!(loaded.len(), linked.len());
    assert!(loaded.len() >= 8, "{loaded:?}");
    for (a, b) in loaded.iter().zip(&linked) {
        assert_eq!(numbers(a), numbers(b), "loaded {a}\ncompiled in {b}");
    }
    // And it learned: the last training loss is well below the first.
    let train_loss: Vec<f64> = loaded.iter().filter(|l| l["split"] == "train").map(|l| l["loss"].as_f64().unwrap()).collect();
    assert!(train_loss[train_loss.len() - 1] < 0.8 * train_loss[0], "{train_loss:?}");

    // A run directory remembers its plugins (an absolute path in the stored config).
    let o = Command::new(env!("CARGO_BIN_EXE_elmlab")).args(["eval", s(&loaded_run), "--json"]).env("ELMLAB_PLUGIN_PATH", lib_dir).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_relative_plugin_path_in_a_config_is_relative_to_the_config_and_stored_absolute() {
    let lib = example_library();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("libs")).unwrap();
    let copy = dir.path().join("libs").join("example.so");
    std::fs::copy(&lib, &copy).unwrap();
    let cfg = config(dir.path(), "rel.ron", &small_config("\"libs/example.so\"").replace("steps: 40", "steps: 2"));
    let run = dir.path().join("run");
    // Run from another working directory: the path must not depend on it.
    let o = Command::new(env!("CARGO_BIN_EXE_elmlab")).current_dir(std::env::temp_dir()).args(["train", s(&cfg), "--out", s(&run)]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stored = std::fs::read_to_string(run.join("config.ron")).unwrap();
    assert!(stored.contains(&copy.canonicalize().unwrap().display().to_string()) || stored.contains(&dir.path().canonicalize().unwrap().join("libs/example.so").display().to_string()), "{stored}");
    let o = Command::new(env!("CARGO_BIN_EXE_elmlab")).current_dir(std::env::temp_dir()).args(["eval", s(&run)]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs `elmlab --plugin <lib> list` and returns its output; it must fail cleanly.
fn refused(libs: &[&Path]) -> String {
    let mut args = Vec::new();
    for l in libs {
        args.extend(["--plugin", s(l)]);
    }
    args.push("list");
    let o = elmlab(&args);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(!out.contains("panicked") && out.contains("error: "), "{out}");
    out
}

/// Compiles C source into a shared library (the C compiler Rust links with).
fn c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(format!("{name}.so"));
    let o = Command::new("cc").args(["-shared", "-fPIC", "-o", s(&lib), s(&c)]).output().expect("running cc");
    assert!(o.status.success(), "{}", text(&o));
    lib
}

#[test]
fn missing_files_other_files_and_libraries_without_the_entry_point_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = refused(&[&dir.path().join("nowhere/libabsent.so")]);
    assert!(out.contains("not found") && out.contains("nowhere/libabsent.so"), "{out}");

    let not_a_library = config(dir.path(), "notes.so", "just text");
    let out = refused(&[&not_a_library]);
    assert!(out.contains("not a shared library") && out.contains("notes.so"), "{out}");

    let plain = c_library(dir.path(), "plain", "int answer(void) { return 42; }\n");
    let out = refused(&[&plain]);
    assert!(out.contains("no elmlab entry point `elmlab_plugin_record`") && out.contains("export_plugin!"), "{out}");
}

#[test]
fn a_library_built_for_another_abi_and_kernel_is_refused_naming_both_fields() {
    // A library declaring this host's record except for the entry ABI and kernel version,
    // as a plugin built against another elmlab would.
    let record: String = elmlab_core::plugin::record::own_fields()
        .iter()
        .map(|(k, v)| match *k {
            "abi" => "abi=7\\n".to_string(),
            "kernel" => "kernel=0.0.1\\n".to_string(),
            _ => format!("{k}={}\\n", v.replace('\\', "\\\\").replace('"', "\\\"")),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let lib = c_library(dir.path(), "other", &format!("const char* elmlab_plugin_record(void) {{ return \"{record}\"; }}\n"));
    let out = refused(&[&lib]);
    let abi = elmlab_core::plugin::record::ENTRY_ABI_VERSION;
    assert!(out.contains(&format!("abi: elmlab has `{abi}`, the plugin has `7`")), "{out}");
    assert!(out.contains(&format!("kernel: elmlab has `{}`, the plugin has `0.0.1`", elmlab_core::CORE_VERSION)), "{out}");
    assert!(!out.contains("rustc:") && !out.contains("dfdx:"), "only differing fields are named: {out}");
}

#[test]
fn two_libraries_registering_the_same_names_are_refused() {
    let lib = example_library();
    let dir = tempfile::tempdir().unwrap();
    // A copy is a second library for the dynamic linker (the same file would be shared).
    let copy = dir.path().join("libsecond.so");
    std::fs::copy(&lib, &copy).unwrap();
    let out = refused(&[&lib, &copy]);
    let first = lib.canonicalize().unwrap().display().to_string();
    assert!(out.contains(&format!("neuron model `tanh_rnn` is already registered by {first}")), "{out}");
    assert!(out.contains(&format!("task `copy_memory` is already registered by {first}")), "{out}");
    assert!(out.contains("libsecond.so"), "{out}");
    // The same library named twice is loaded once, without complaint.
    let o = elmlab(&["--plugin", s(&lib), "--plugin", s(&lib), "list"]);
    assert!(o.status.success(), "{}", text(&o));
}

