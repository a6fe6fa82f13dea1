//! Language modelling end to end on the synthetic Markov text: the model's bits per byte
//! end close above the source's entropy rate, far below the unigram entropy; a run
//! stopped and resumed (carried state included) equals an uninterrupted one.

mod common;
use common::*;
use elmlab_tasks::enwik8::markov::MarkovSource;

fn cfg(dir: &std::path::Path) -> std::path::PathBuf {
    let text = dir.join("markov.txt");
    config(
        dir,
        "c.ron",
        &format!(
            r#"(
    name: "lm-e2e",
    seed: 2,
    task: (kind: "enwik8", path: "{}", synthetic: true, synthetic_bytes: 200000, vocab_size: 17, segment: 50,
           eval_segment: 250, eval_bytes: Some(4000), reset_steps: 100),
    model: (
        neuron: (kind: "elm", memory: 4, branches: 8, synapses_per_branch: 4, tau_memory: (0.1, 20.0), high_pass_tau: None, input_scale: 2.0),
        connectivity: (kind: "random_fan_in", recurrent_share: 0.8),
        units: 24,
    ),
    train: (steps: 250, batch: 16, optimizer: (kind: "adam", lr: 1e-2), schedule: (warmup_steps: 20),
            log_every: 25, eval_every: 125, checkpoint_every: 60),
)"#,
            text.display()
        ),
    )
}

#[test]
fn bits_per_byte_approach_the_entropy_rate_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    train_ok(&c, &whole, &[]);
    let source = MarkovSource::new(0);
    let (rate, unigram) = (source.entropy_rate(), source.unigram_entropy());
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["best"]["metric"], "bits_per_byte");
    let bpb = summary["best"]["test"]["bits_per_byte"].as_f64().unwrap();
    // 4,000 test bytes: the estimate's noise is a few hundredths of a bit
    assert!(bpb > rate - 0.05 && bpb < rate + 0.2, "bits per byte {bpb}, entropy rate {rate}");
    assert!(bpb < unigram - 1.0, "bits per byte {bpb}, unigram entropy {unigram}");

    // stop between checkpoints, resume: the carried state comes back from the checkpoint
    train_ok(&c, &parts, &["--halt-after", "97"]);
    let latest = std::fs::read_to_string(parts.join("checkpoints/latest")).unwrap();
    assert!(parts.join("checkpoints").join(latest.trim()).join("carried_state.safetensors").is_file());
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap(), std::fs::read_to_string(parts.join("metrics.jsonl")).unwrap());
}

#[test]
fn a_missing_text_file_is_refused_with_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "c.ron", r#"(task: (kind: "enwik8", path: "/nonexistent/enwik8"), model: (neuron: (kind: "linear"), units: 4))"#);
    let o = elmlab(&["train", s(&c), "--out", s(&dir.path().join("r"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("Hutter Prize"), "{}", text(&o));
    assert!(!dir.path().join("r").exists());
    // budgets need no data
    let o = elmlab(&["inspect", s(&c), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
}
