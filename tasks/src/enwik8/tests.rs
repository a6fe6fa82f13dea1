use super::*;
use elmlab_core::settings::DeclaredSettings;
use elmlab_core::task::collect_eval;

fn task_on(path: &Path, extra: &[(&str, serde_json::Value)]) -> Box<dyn Task> {
    let mut m = elmlab_core::settings::default_settings(Enwik8Settings::FIELDS).as_map().clone();
    m.insert("path".into(), serde_json::json!(path.to_str().unwrap()));
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    (TaskEntry::of::<Enwik8Settings>().build)(&Settings::from_map(m), &TaskContext { seed: 1 }).unwrap()
}

#[test]
fn split_boundaries_vocabulary_and_unknown_symbol() {
    // 1,000 bytes: train 900 of 'a'..'j', valid 50, test 50 with a byte unseen in training
    let mut text: Vec<u8> = (0..1000).map(|i| b'a' + (i % 10) as u8).collect();
    text[990] = b'Z';
    let c = Corpus::new(&text, 12).unwrap();
    assert_eq!((c.train.len(), c.valid.len(), c.test.len()), (900, 50, 50));
    assert_eq!(c.vocab, (b'a'..=b'j').collect::<Vec<_>>());
    assert_eq!(c.train[..3], [0, 1, 2]);
    assert_eq!(c.test[40], c.unknown() as u8, "the byte unseen in training maps to the unknown symbol");
    assert_eq!(c.unknown(), 10);
    let err = Corpus::new(&text, 10).err().unwrap().to_string();
    assert!(err.contains("10 distinct bytes") && err.contains(">= 11"), "{err}");
}

#[test]
fn streams_cover_the_split_contiguously() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::write(&path, (0..20_000u32).map(|i| b'a' + ((i * 7 + i / 13) % 20) as u8).collect::<Vec<_>>()).unwrap();
    let t = task_on(&path, &[("segment", serde_json::json!(50)), ("vocab_size", serde_json::json!(21))]);
    let corpus = Corpus::new(&std::fs::read(&path).unwrap(), 21).unwrap();
    let (batch, stream_len) = (4, corpus.train.len() / 4);
    // concatenating each stream's segments over steps gives its slice of the split
    let mut streams = vec![Vec::new(); batch];
    let per_stream = (stream_len - 1) / 50;
    for step in 0..per_stream as u64 {
        let b = t.train_batch(step, batch).unwrap();
        let Inputs::OneHot { symbols, .. } = &b.inputs else { panic!() };
        for (s, out) in streams.iter_mut().enumerate() {
            out.extend((0..50).map(|i| symbols[i * batch + s] as u8));
            // targets are the next symbols
            assert_eq!(b.targets[49 * batch + s] as u8, corpus.train[s * stream_len + step as usize * 50 + 50]);
        }
        // the first segment of a pass starts from zero state
        let Carry::Continue { reset } = &b.carry else { panic!() };
        if step == 0 {
            assert!(reset.iter().all(|r| *r));
        }
    }
    for (s, got) in streams.iter().enumerate() {
        assert_eq!(got[..], corpus.train[s * stream_len..s * stream_len + per_stream * 50]);
    }
    // the pass wraps around
    assert_eq!(t.train_batch(per_stream as u64, batch).unwrap().inputs, t.train_batch(0, batch).unwrap().inputs);
}

#[test]
fn evaluation_walks_the_split_in_order_lazily() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::write(&path, (0..4000u32).map(|i| b'a' + (i % 7) as u8).collect::<Vec<_>>()).unwrap();
    let t = task_on(&path, &[("eval_segment", serde_json::json!(30)), ("vocab_size", serde_json::json!(8))]);
    let batches = collect_eval(t.as_ref(), Split::Valid, 8).unwrap();
    // 200 validation bytes → 199 predictions in segments of 30, batch 1, never reset after the first
    assert_eq!(batches.iter().map(|b| b.steps).sum::<usize>(), 199);
    assert!(batches.iter().all(|b| b.batch == 1));
    assert_eq!(batches[0].carry, Carry::Continue { reset: vec![true] });
    assert!(batches[1..].iter().all(|b| b.carry == Carry::Continue { reset: vec![false] }));
    let limited = task_on(&path, &[("eval_segment", serde_json::json!(30)), ("vocab_size", serde_json::json!(8)), ("eval_bytes", serde_json::json!(61))]);
    assert_eq!(collect_eval(limited.as_ref(), Split::Valid, 8).unwrap().iter().map(|b| b.steps).sum::<usize>(), 60);
}

#[test]
fn reset_probability_decays_by_cosine_then_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Enwik8Settings::defaults().unwrap();
    settings.path = dir.path().join("x").display().to_string();
    let t = Enwik8::new(settings, 0);
    assert_eq!(t.reset_probability(0), 1.0);
    assert!((t.reset_probability(20_000) - 0.505).abs() < 1e-12);
    assert_eq!(t.reset_probability(40_000), 0.01);
    assert_eq!(t.reset_probability(1_000_000), 0.01);
}

#[test]
fn zip_files_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("enwik8.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        z.start_file("enwik8", zip::write::FileOptions::default()).unwrap();
        std::io::Write::write_all(&mut z, &[b'x'; 500]).unwrap();
        z.finish().unwrap();
    }
    assert_eq!(read_text(&zpath).unwrap(), vec![b'x'; 500]);
    let err = read_text(&dir.path().join("nothing")).unwrap_err().to_string();
    assert!(err.contains("Hutter Prize"), "{err}");
}

#[test]
fn markov_source_entropy_is_closed_form() {
    let m = markov::MarkovSource::new(0);
    let h = m.entropy_rate();
    assert!(h > 0.5 && h < 2.0 && m.unigram_entropy() > h + 1.0, "rate {h}, unigram {}", m.unigram_entropy());
    // the empirical conditional entropy of a long sample approaches the rate
    let text = m.generate(400_000);
    let mut counts = vec![[0usize; 16]; 16];
    text.windows(2).for_each(|w| counts[(w[0] - b'a') as usize][(w[1] - b'a') as usize] += 1);
    let total = (text.len() - 1) as f64;
    let empirical: f64 = counts
        .iter()
        .map(|row| {
            let n: usize = row.iter().sum();
            row.iter().filter(|&&c| c > 0).map(|&c| -(c as f64 / total) * (c as f64 / n as f64).log2()).sum::<f64>()
        })
        .sum();
    assert!((empirical - h).abs() < 0.01, "empirical {empirical} vs {h}");
}

#[test]
fn conforms_on_a_small_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::write(&path, (0..6000u32).map(|i| b'a' + ((i * 7 + i / 13) % 11) as u8).collect::<Vec<_>>()).unwrap();
    elmlab_core::conformance::check_entry_fields(&TaskEntry::of::<Enwik8Settings>());
    elmlab_core::conformance::check_task(task_on(&path, &[("vocab_size", serde_json::json!(12)), ("segment", serde_json::json!(16))]).as_ref());
}

