//! The SHD loader on files written by h5py (tests/fixtures/make_shd_fixtures.py), and
//! the SHD-Adding task rules on the synthetic twin.

use elmlab_core::registry::Registry;
use elmlab_core::settings::Settings;
use elmlab_core::task::{collect_eval, Inputs, Split, Task, TaskContext};
use elmlab_tasks::shd::data::{bin_of, bin_samples, locate, read_file, BinnedSample};
use elmlab_core::settings::DeclaredSettings;
use elmlab_tasks::shd::{DataSource, ShdData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the fixture's four samples bin to at 2 ms (worked out by hand in the script's comments).
fn expected() -> Vec<(Vec<u32>, u8)> {
    vec![
        (vec![0, 125 * 700 + 3, 250 * 700 + 699, 375 * 700 + 10], 7),
        (vec![1, 31 * 700 + 2, 499 * 700 + 698], 19),
        (vec![], 0),
        (vec![62 * 700 + 350, 187 * 700 + 351], 12),
    ]
}

fn binned(dir: &str) -> Vec<BinnedSample> {
    let path = locate(&fixtures().join(dir), "train").unwrap();
    bin_samples(&read_file(&path).unwrap(), 0.002, &path).unwrap()
}

#[test]
fn reads_float16_float32_uint16_uint32_and_gzip_alike() {
    for dir in ["shd_f16", "shd_f32", "shd_gz"] {
        let got: Vec<(Vec<u32>, u8)> = binned(dir).into_iter().map(|s| (s.cells, s.label)).collect();
        assert_eq!(got, expected(), "{dir}");
    }
}

#[test]
fn raw_values_come_through_exactly() {
    let path = fixtures().join("shd_f16/shd_train.h5");
    let samples = read_file(&path).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[0].times, vec![0.0, 0.25, 0.25, 0.5, 0.75, 1.0, 1.125]);
    assert_eq!(samples[0].units, vec![0, 3, 3, 699, 10, 5, 6]);
    assert!(samples[2].times.is_empty() && samples[2].units.is_empty());
    assert_eq!(samples.iter().map(|s| s.label).collect::<Vec<_>>(), vec![7, 19, 0, 12]);
}

#[test]
fn bins_follow_the_edge_rule() {
    assert_eq!(bin_of(0.006, 0.002, 500), Some(3), "on an edge: the later bin, despite 0.006/0.002 = 2.9999…");
    assert_eq!(bin_of(0.0059, 0.002, 500), Some(2));
    assert_eq!(bin_of(0.0, 0.002, 500), Some(0));
    assert_eq!(bin_of(0.99999999999, 0.002, 500), Some(499));
    assert_eq!(bin_of(1.0, 0.002, 500), None);
    assert_eq!(bin_of(-0.001, 0.002, 500), None);
    assert_eq!(bin_of(0.5, 0.01, 100), Some(50));
}

#[test]
fn broken_or_missing_files_are_refused_with_a_hint() {
    let broken = fixtures().join("shd_broken");
    for (file, needle) in [("truncated.h5", "not a readable SHD file"), ("no_labels.h5", "labels")] {
        let err = read_file(&broken.join(file)).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("Zenke lab"), "{file}: {err}");
    }
    let err = locate(Path::new("/nonexistent/shd"), "train").unwrap_err().to_string();
    assert!(err.contains("shd_train.h5") && err.contains("zenkelab.org"), "{err}");
    let random = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(random.path(), (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    assert!(read_file(random.path()).is_err());
}

fn settings(dir: &Path, extra: &[(&str, serde_json::Value)]) -> Settings {
    let mut m = BTreeMap::new();
    m.insert("data_dir".to_string(), serde_json::json!(dir.to_str().unwrap()));
    m.insert("synthetic".to_string(), serde_json::json!(true));
    m.insert("bin_ms".to_string(), serde_json::json!(25.0));
    m.insert("validation_share".to_string(), serde_json::json!(0.2));
    m.insert("valid_batches".to_string(), serde_json::json!(3));
    m.insert("test_batches".to_string(), serde_json::json!(2));
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    Settings::from_map(m)
}

fn adding(dir: &Path, seed: u64) -> Box<dyn Task> {
    let e = Registry::builtin().tasks.get("shd_adding").unwrap();
    (e.build)(&settings(dir, &[]), &TaskContext { seed }).unwrap()
}

#[test]
fn shd_adding_rules_on_the_synthetic_twin() {
    let dir = tempfile::tempdir().unwrap();
    let task = adding(dir.path(), 4);
    assert_eq!((task.input_width(), task.classes(), task.sequence_length()), (700, 19, 80));
    let b = task.train_batch(0, 6).unwrap();
    assert_eq!((b.steps, b.batch), (80, 6));
    elmlab_core::task::validate_batch(task.as_ref(), &b).unwrap();
    // labels are (y1 mod 10) + (y2 mod 10): check them against the painted inputs by
    // rebuilding each half from the pool
    let pools = DataSource::new(&ShdData::from_settings(&settings(dir.path(), &[])).unwrap(), 4).unwrap().load().unwrap();
    let Inputs::Dense(x) = &b.inputs else { panic!() };
    for s in 0..6 {
        let half = |offset: usize| -> Vec<u32> {
            let mut cells = Vec::new();
            for t in 0..40 {
                for c in 0..700 {
                    if x[((offset + t) * 6 + s) * 700 + c] == 1.0 {
                        cells.push((t * 700 + c) as u32);
                    }
                }
            }
            cells
        };
        let find = |cells: Vec<u32>| pools.train.iter().find(|p| p.cells == cells).expect("a training sample").label;
        let (y1, y2) = (find(half(0)), find(half(40)));
        assert_eq!(b.targets[s], (y1 % 10) as usize + (y2 % 10) as usize);
    }
    // deterministic for a seed, different across steps and seeds
    assert_eq!(task.train_batch(3, 4).unwrap(), task.train_batch(3, 4).unwrap());
    assert_ne!(task.train_batch(3, 4).unwrap(), task.train_batch(4, 4).unwrap());
    assert_ne!(task.train_batch(3, 4).unwrap(), adding(dir.path(), 5).train_batch(3, 4).unwrap());
    // fixed evaluation sets
    let eval = |split| collect_eval(task.as_ref(), split, 4).unwrap();
    assert_eq!(eval(Split::Valid), eval(Split::Valid));
    assert_eq!(eval(Split::Valid).len(), 3);
    assert_eq!(eval(Split::Test).len(), 2);
    // sum labels span 0..=18 over enough batches
    let mut seen = [false; 19];
    (0..40).for_each(|s| task.train_batch(s, 16).unwrap().targets.iter().for_each(|&y| seen[y] = true));
    assert!(seen.iter().all(|&x| x));
}

#[test]
fn validation_pool_is_a_seeded_disjoint_fifth_of_the_train_file() {
    let dir = tempfile::tempdir().unwrap();
    let load = |seed| DataSource::new(&ShdData::from_settings(&settings(dir.path(), &[])).unwrap(), seed).unwrap().load().unwrap();
    let (a, b, c) = (load(1), load(1), load(2));
    let ids = |p: &[BinnedSample]| p.iter().map(|s| s.index).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(&a.valid).len(), 240); // 20% of the 1,200 synthetic training samples
    assert_eq!(ids(&a.train).len(), 960);
    assert!(ids(&a.valid).is_disjoint(&ids(&a.train)));
    assert_eq!(ids(&a.valid), ids(&b.valid));
    assert_ne!(ids(&a.valid), ids(&c.valid));
    assert_eq!(a.test.len(), 400);
}

#[test]
fn shd_digits_reads_one_digit() {
    let dir = tempfile::tempdir().unwrap();
    let e = Registry::builtin().tasks.get("shd").unwrap();
    let mut s = settings(dir.path(), &[]).as_map().clone();
    s.remove("valid_batches");
    s.remove("test_batches");
    let task = (e.build)(&Settings::from_map(s), &TaskContext { seed: 0 }).unwrap();
    assert_eq!((task.classes(), task.sequence_length()), (20, 40));
    let test = collect_eval(task.as_ref(), Split::Test, 64).unwrap();
    assert_eq!(test.iter().map(|b| b.batch).sum::<usize>(), 400);
}

#[test]
fn a_bin_width_that_does_not_divide_a_second_is_refused() {
    let e = Registry::builtin().tasks.get("shd_adding").unwrap();
    let err = (e.build)(&settings(Path::new("/tmp"), &[("bin_ms", serde_json::json!(3.0))]), &TaskContext { seed: 0 }).err().unwrap().to_string();
    assert!(err.contains("bin_ms"), "{err}");
}

#[test]
fn both_tasks_conform_on_the_synthetic_twin() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::builtin();
    for name in ["shd_adding", "shd"] {
        let e = registry.tasks.get(name).unwrap();
        elmlab_core::conformance::check_entry_fields(e);
        let mut s = settings(dir.path(), &[]).as_map().clone();
        if name == "shd" {
            s.remove("valid_batches");
            s.remove("test_batches");
        }
        let task = (e.build)(&Settings::from_map(s), &TaskContext { seed: 2 }).unwrap();
        elmlab_core::conformance::check_task(task.as_ref());
    }
}
