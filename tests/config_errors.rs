//! What a user sees for bad configs, overrides and paths: a clear message, no panic,
//! nothing written.

mod common;
use common::*;

fn refused(args: &[&str]) -> String {
    let o = elmlab(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "expected a refusal, got: {t}");
    assert!(!t.contains("panicked"), "{t}");
    t
}

#[test]
fn unknown_key_lists_valid_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let t = refused(&["train", s(&cfg), "model.unit=3", "--out", s(&dir.path().join("run"))]);
    assert!(t.contains("unknown key `model.unit`") && t.contains("neuron, connectivity, units, budget"), "{t}");
    assert!(!dir.path().join("run").exists(), "nothing may be written for a refused config");
}

#[test]
fn wrong_type_names_the_expected_type() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let t = refused(&["inspect", s(&cfg), "train.optimizer.lr=fast"]);
    assert!(t.contains("`train.optimizer.lr` expects number >= 0, got `fast`"), "{t}");
}

#[test]
fn unknown_plugin_lists_registered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let t = refused(&["inspect", s(&cfg), "model.neuron.kind=nope"]);
    assert!(t.contains("unknown neuron model `nope`") && t.contains("linear"), "{t}");
    let t = refused(&["inspect", s(&cfg), "model.connectivity.kind=ring"]);
    assert!(t.contains("random_fan_in") && t.contains("dense"), "{t}");
}

#[test]
fn missing_file_and_bad_ron_are_refused() {
    let t = refused(&["inspect", "/nonexistent/x.ron"]);
    assert!(t.contains("cannot read config /nonexistent/x.ron"), "{t}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "bad.ron", "(name: \"x\", ");
    let t = refused(&["inspect", s(&cfg)]);
    assert!(t.contains("not valid RON"), "{t}");
}

#[test]
fn impossible_budget_is_refused_with_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let t = refused(&["inspect", s(&cfg), "model.budget=10"]);
    assert!(t.contains("budget 10 is below the smallest network") && t.contains("parameters"), "{t}");
}

#[test]
fn plugin_refusals_name_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let t = refused(&["inspect", s(&cfg), "model.connectivity.recurrent_share=1.5"]);
    assert!(t.contains("connectivity `random_fan_in`") && t.contains("1.5"), "{t}");
}

#[test]
fn run_directories_are_not_overwritten_and_resume_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let run = dir.path().join("run");
    let o = elmlab(&["train", s(&cfg), "train.steps=3", "--out", s(&run)]);
    assert!(o.status.success(), "{}", text(&o));
    let t = refused(&["train", s(&cfg), "--out", s(&run)]);
    assert!(t.contains("already holds a run") && t.contains("--resume"), "{t}");
    let t = refused(&["train", "--resume", s(&dir.path().join("nothing"))]);
    assert!(t.contains("not a run directory"), "{t}");
    let t = refused(&["eval", s(&run), "--split", "dev"]);
    assert!(t.contains("valid: train, valid, test"), "{t}");
}

#[test]
fn elm_settings_that_cannot_work_are_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let elm = "model.neuron.kind=elm";
    let t = refused(&["inspect", s(&cfg), elm, "model.neuron.synapses_per_branch=0"]);
    assert!(t.contains("`model.neuron.synapses_per_branch` expects integer >= 1 or None, got `0`"), "{t}");
    let t = refused(&["inspect", s(&cfg), elm, "model.neuron.memory=0"]);
    assert!(t.contains("`model.neuron.memory` expects integer >= 1, got `0`"), "{t}");
    let t = refused(&["inspect", s(&cfg), elm, "model.neuron.tau_memory=(500,1)"]);
    assert!(t.contains("`model.neuron.tau_memory` expects pair of numbers (low, high), got `(500,1)`"), "{t}");
    let t = refused(&["inspect", s(&cfg), elm, "model.budget=1000"]);
    assert!(t.contains("budget 1000 is below the smallest network: 1 unit already needs"), "{t}");
}
