//! Device choice on the CPU build (the suite never needs a GPU): `cuda:N`, from the
//! config or from `--device`, is refused before anything runs, with how to get a CUDA
//! build; `--device` overrides the config; bad spellings are named.
#![cfg(not(feature = "cuda"))]

mod common;
use common::*;

fn with_device(device: &str) -> String {
    SMALL.replacen("seed: 5,", &format!("seed: 5, device: \"{device}\","), 1)
}

/// Exit code 2, the build hint, no panic.
fn assert_needs_cuda_build(o: &std::process::Output, device: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains(&format!("device `{device}` needs a CUDA build")), "{t}");
    assert!(t.contains("scripts/build-cuda.sh") && t.contains("--features cuda"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn cuda_in_the_config_is_refused_with_the_build_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "gpu.ron", &with_device("cuda:0"));
    let out = dir.path().join("run");
    assert_needs_cuda_build(&elmlab(&["train", s(&cfg), "--out", s(&out)]), "cuda:0");
    assert!(!out.exists(), "a refused run must not create its run directory");
    assert_needs_cuda_build(&elmlab(&["inspect", s(&cfg)]), "cuda:0");
    // The same key as an override.
    let cpu_cfg = config(dir.path(), "cpu.ron", SMALL);
    assert_needs_cuda_build(&elmlab(&["inspect", s(&cpu_cfg), "device=cuda:3"]), "cuda:3");
}

#[test]
fn device_flag_overrides_the_config_on_train_inspect_eval_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "small.ron", SMALL);
    let out = dir.path().join("run");
    assert_needs_cuda_build(&elmlab(&["train", s(&cfg), "--out", s(&out), "--device", "cuda:1"]), "cuda:1");
    assert!(!out.exists());
    assert_needs_cuda_build(&elmlab(&["inspect", s(&cfg), "--device", "cuda:0"]), "cuda:0");

    // `--device cpu` wins over a config that asks for a GPU.
    let gpu_cfg = config(dir.path(), "gpu.ron", &with_device("cuda:0"));
    let o = elmlab(&["inspect", s(&gpu_cfg), "--device", "cpu", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["config"]["device"], "cpu");

    // A finished run, then eval and resume asked onto a GPU.
    train_ok(&cfg, &out, &["train.steps=8", "train.checkpoint_every=4", "train.eval_every=4"]);
    assert_needs_cuda_build(&elmlab(&["eval", s(&out), "--device", "cuda:0"]), "cuda:0");
    let o = elmlab(&["eval", s(&out), "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_needs_cuda_build(&elmlab(&["train", "--resume", s(&out), "--device", "cuda:0"]), "cuda:0");
}

#[test]
fn unknown_device_spellings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "small.ron", SMALL);
    for bad in ["gpu", "cuda", "cuda:x"] {
        let o = elmlab(&["inspect", s(&cfg), "--device", bad]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(t.contains("`device` expects cpu or cuda:N") && t.contains(&format!("`{bad}`")), "{bad}: {t}");
        let o = elmlab(&["train", s(&config(dir.path(), "bad.ron", &with_device(bad))), "--out", s(&dir.path().join("r"))]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("`device` expects cpu or cuda:N"), "{}", text(&o));
    }
}

#[test]
fn a_gpu_sweep_is_planned_here_and_submitted_with_the_cuda_binary() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("gpu.ron");
    let base = config(dir.path(), "base.ron", SMALL);
    std::fs::write(&sweep, format!(r#"(name: "gpu", base: "{}", set: {{"device": "cuda:0"}}, axes: [(key: "model.units", values: [8, 12])])"#, s(&base))).unwrap();
    let out = dir.path().join("sweep");
    // Planning sizes the runs without a device, so a CPU build plans a GPU sweep.
    let o = elmlab(&["sweep", "plan", s(&sweep), "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.matches(r#"device: \"cuda:0\""#).count(), 2, "{manifest}");

    let cuda_binary = config(dir.path(), "elmlab-cuda", "#!/bin/sh\n");
    let o = elmlab(&["sweep", "submit", s(&out.join("manifest.jsonl")), "--slurm", "--dry-run", "--gres", "gpu:1", "--binary", s(&cuda_binary)]);
    assert!(o.status.success(), "{}", text(&o));
    let array = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    let collect = std::fs::read_to_string(out.join("slurm/collect.sbatch")).unwrap();
    let exe = std::path::absolute(&cuda_binary).unwrap();
    assert!(array.contains(&format!("'{}' run-index", exe.display())), "{array}");
    assert!(collect.contains(&format!("'{}' sweep collect", exe.display())), "{collect}");

    let o = elmlab(&["sweep", "submit", s(&out.join("manifest.jsonl")), "--slurm", "--dry-run", "--binary", "/nonexistent/elmlab"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--binary /nonexistent/elmlab: no such file"), "{}", text(&o));
}
