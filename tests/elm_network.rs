//! The ELM Network from the command line: training with dropout and penalties, exact
//! resume, the documented weights layout, and `record`.

mod common;
use common::*;
use elmlab_core::params::BufferValues;
use npyz::WriterBuilder;

const ELM: &str = r#"(
    name: "elm-small",
    seed: 2,
    task: (kind: "delayed_recall", classes: 4, cue_steps: 2, delay: 5, noise_channels: 3, valid_batches: 1, test_batches: 1),
    model: (
        neuron: (kind: "elm", memory: 3, branches: 4, synapses_per_branch: 2, mlp_layers: 2, high_pass_tau: 2.0,
                 dropout: 0.2, mlp_penalty: 0.01, activity_penalty: 0.1),
        units: 6,
    ),
    train: (steps: 12, batch: 4, eval_batch: 8, optimizer: (kind: "adamax", lr: 5e-3), log_every: 3, eval_every: 4, checkpoint_every: 5),
)"#;


#[test]
fn trains_with_dropout_and_penalties_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "elm.ron", ELM);
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    train_ok(&cfg, &whole, &[]);
    train_ok(&cfg, &parts, &["--halt-after", "7"]);
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    let m = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    assert_eq!(m, std::fs::read_to_string(parts.join("metrics.jsonl")).unwrap());
    let first: serde_json::Value = serde_json::from_str(m.lines().next().unwrap()).unwrap();
    assert!(first["penalty.mlp_magnitude"].as_f64().unwrap() > 0.0 && first["penalty.activity"].as_f64().unwrap() > 0.0, "{first}");
    // the reported loss is cross-entropy plus the penalties
    let sum = first["cross_entropy"].as_f64().unwrap() + first["penalty.mlp_magnitude"].as_f64().unwrap() + first["penalty.activity"].as_f64().unwrap();
    assert!((first["loss"].as_f64().unwrap() - sum).abs() < 1e-5, "{first}");
}

#[test]
fn weights_follow_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "elm.ron", ELM);
    let run = dir.path().join("r");
    train_ok(&cfg, &run, &["train.steps=1"]);
    let (tensors, meta) = elmlab_train::checkpoint::load_tensors(&run.join("best/weights.safetensors")).unwrap();
    assert!(meta["config"].contains("kind: \"elm\"") && meta["step"] == "1");
    let (n, c, k_c, d_m, d_mlp, d_in) = (6, 4, 8, 3, 6, 4 + 1 + 3);
    let expect: Vec<(&str, Vec<usize>, bool)> = vec![
        ("hidden.w_s", vec![n, k_c], false),
        ("hidden.mlp.0.weight", vec![n, d_mlp, 4 + d_m], false),
        ("hidden.mlp.0.bias", vec![n, d_mlp], false),
        ("hidden.mlp.1.weight", vec![n, d_mlp, d_mlp], false),
        ("hidden.mlp.2.weight", vec![n, d_m, d_mlp], false),
        ("hidden.mlp.2.bias", vec![n, d_m], false),
        ("hidden.w_y", vec![n, d_m], false),
        ("hidden.b", vec![n], false),
        ("hidden.connectome", vec![n, k_c], true),
        ("hidden.tau_m", vec![n, d_m], false),
        ("readout.w_s", vec![c, k_c], false),
        ("readout.mlp.0.weight", vec![c, 3, 4 + 3], false),
        ("readout.mlp.0.bias", vec![c, 3], false),
        ("readout.w_y", vec![c, 3], false),
        ("readout.b", vec![c], false),
        ("readout.connectome", vec![c, k_c], true),
        ("readout.tau_m", vec![c, 3], false),
        ("output.weight", vec![c, c], false),
        ("output.bias", vec![c], false),
    ];
    for (name, shape, integer) in &expect {
        let (_, got_shape, values) = tensors.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(got_shape, shape, "{name}");
        assert_eq!(matches!(values, BufferValues::I64(_)), *integer, "{name}");
    }
    assert_eq!(tensors.len(), expect.len() + 1, "hidden.mlp.1.bias is the one not listed above");
    // connectome indices point into [inputs ; previous outputs], the readout's into the hidden layer
    let idx = |name: &str| match &tensors.iter().find(|(n, _, _)| n == name).unwrap().2 {
        BufferValues::I64(v) => v.clone(),
        _ => unreachable!(),
    };
    assert!(idx("hidden.connectome").iter().all(|&i| (0..(d_in + n) as i64).contains(&i)));
    assert!(idx("readout.connectome").iter().all(|&i| (0..n as i64).contains(&i)));
}

#[test]
fn record_writes_consistent_per_step_states() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "elm.ron", ELM);
    let run = dir.path().join("r");
    train_ok(&cfg, &run, &["train.steps=2"]);
    let (b, t, d) = (2usize, 7usize, 8usize);
    let input = dir.path().join("x.npy");
    {
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[b as u64, t as u64, d as u64]).writer(std::fs::File::create(&input).unwrap()).begin_nd().unwrap();
        w.extend((0..b * t * d).map(|i| ((i * 7) % 5 == 0) as u8 as f32)).unwrap();
        w.finish().unwrap();
    }
    let out = dir.path().join("rec.npz");
    let o = elmlab(&["record", s(&run), "--input", s(&input), "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let mut npz = npyz::npz::NpzArchive::open(&out).unwrap();
    let mut array = |name: &str| {
        let a = npz.by_name(name).unwrap().unwrap_or_else(|| panic!("no {name}"));
        let shape: Vec<usize> = a.shape().iter().map(|&x| x as usize).collect();
        (shape, a.into_vec::<f32>().unwrap())
    };
    let (ls, logits) = array("logits");
    let (hs, activity) = array("hidden.activity");
    let (ms, _) = array("hidden.memory");
    let (rs, readout) = array("readout.activity");
    assert_eq!((ls, hs, ms, rs.clone()), (vec![b, t, 4], vec![b, t, 6], vec![b, t, 6, 3], vec![b, t, 4]));
    assert!(activity.iter().all(|&a| a >= 0.0), "relu output");
    // logits = output.weight · readout activity + output.bias, step by step
    let (tensors, _) = elmlab_train::checkpoint::load_tensors(&run.join("best/weights.safetensors")).unwrap();
    let get = |name: &str| match &tensors.iter().find(|(n, _, _)| n == name).unwrap().2 {
        BufferValues::F32(v) => v.clone(),
        _ => unreachable!(),
    };
    let (w, bias) = (get("output.weight"), get("output.bias"));
    for pos in 0..b * t {
        for c in 0..4 {
            let z: f32 = bias[c] + (0..4).map(|j| w[c * 4 + j] * readout[pos * 4 + j]).sum::<f32>();
            assert!((z - logits[pos * 4 + c]).abs() < 1e-5, "position {pos} class {c}");
        }
    }
    // a batch of the wrong width is refused
    let bad = dir.path().join("bad.npy");
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&[1, 2, 3]).writer(std::fs::File::create(&bad).unwrap()).begin_nd().unwrap();
    w.extend([0.0f32; 6]).unwrap();
    w.finish().unwrap();
    let o = elmlab(&["record", s(&run), "--input", s(&bad), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("width 3") && text(&o).contains("encodes 8"), "{}", text(&o));
}
