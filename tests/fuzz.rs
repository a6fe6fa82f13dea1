//! Fuzzing the readers of everything a user hands elmlab — configs with overrides, SHD
//! HDF5 files, the Enwik8 text or zip, safetensors weights, `.npy` input batches and
//! plugin ELF files — with mutations of a committed seed corpus (tests/fuzz/corpus and
//! the readers' test fixtures). Each reader must answer every input with a value or an
//! error: a panic, an input that runs for over 20 s, or an allocation over 1 GiB (this
//! binary's allocator refuses it, which aborts) fails the test, and the input is kept in
//! target/fuzz/<target>/ (`panic-N`, or `hang`).
//!
//! Each target runs for ELMLAB_FUZZ_SECONDS (default 2; CI: 30) and writes how many
//! inputs it ran to target/fuzz/<target>/report.txt.

use elmlab_connectivity as _;
use elmlab_neurons as _;
use elmlab_tasks as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The system allocator, refusing single allocations over 1 GiB: a reader that sizes a
/// buffer from a header it has not checked fails here instead of exhausting the machine.
struct Capped;

const MAX_ALLOCATION: usize = 1 << 30;

thread_local! {
    /// Allocations refused on this thread (each target reads on a thread of its own).
    static REFUSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            REFUSED.with(|r| r.set(r.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            REFUSED.with(|r| r.set(r.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seconds() -> f64 {
    std::env::var("ELMLAB_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

/// The seed inputs: every file of the target's corpus folder and of `extra` folders.
fn seeds(target: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    let mut dirs = vec![root().join("tests/fuzz/corpus").join(target)];
    dirs.extend(extra.iter().map(|d| root().join(d)));
    let mut out = Vec::new();
    for dir in dirs {
        // A target's own corpus folder may be absent (git keeps no empty folders): SHD's
        // seeds are the task's fixtures.
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        out.extend(files.iter().map(|f| std::fs::read(f).unwrap()));
    }
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

const INTERESTING: [u64; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x7fff_ffff_ffff_ffff, u64::MAX];

/// One input: a seed with one to eight random edits (bit flips, interesting values,
/// insertions, deletions, duplications, truncation, a splice of another seed, and for
/// text the tokens of `words`).
fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>], words: &[&str]) -> Vec<u8> {
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=8) {
        let len = data.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let at = rng.gen_range(0..len);
                data[at] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.gen_range(0..len);
                data[at] = rng.gen();
            }
            2 if len >= 8 => {
                // headers are where sizes and offsets live: half the time, the first 256 bytes
                let width = [1, 2, 4, 8][rng.gen_range(0..4)];
                let end = if rng.gen() { (len - width).min(256) } else { len - width };
                let at = rng.gen_range(0..=end);
                let v = INTERESTING[rng.gen_range(0..INTERESTING.len())].to_le_bytes();
                data[at..at + width].copy_from_slice(&v[..width]);
            }
            3 => {
                let at = rng.gen_range(0..=len);
                let n = rng.gen_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                data.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - at).min(64));
                data.drain(at..at + n);
            }
            5 if len > 0 => {
                let at = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - at).min(64));
                let copy = data[at..at + n].to_vec();
                let to = rng.gen_range(0..=len);
                data.splice(to..to, copy);
            }
            6 if len > 0 => data.truncate(rng.gen_range(0..len)),
            7 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let from = rng.gen_range(0..other.len());
                    let at = rng.gen_range(0..=len);
                    data.truncate(at);
                    data.extend_from_slice(&other[from..]);
                }
            }
            _ if !words.is_empty() => {
                let at = rng.gen_range(0..=len);
                let word = words[rng.gen_range(0..words.len())].as_bytes().to_vec();
                data.splice(at..at, word);
            }
            _ => {}
        }
    }
    data
}

/// Runs `read` on mutated inputs for the time budget, in a thread watched for hangs.
fn fuzz(target: &'static str, seeds: Vec<Vec<u8>>, words: &'static [&'static str], read: fn(&[u8])) {
    let out = root().join("target/fuzz").join(target);
    std::fs::create_dir_all(&out).unwrap();
    let budget = Duration::from_secs_f64(seconds());
    let (tx, rx) = std::sync::mpsc::channel::<Option<(u64, usize, usize)>>();
    let current = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seed_count = seeds.len() as u64;
    let worker_dir = out.clone();
    let reading = current.clone();
    quiet_panics_on_fuzz_threads();
    let worker = std::thread::Builder::new().name(format!("fuzz-{target}")).spawn(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(target.bytes().map(u64::from).sum());
        let started = Instant::now();
        let (mut inputs, mut panics) = (0u64, 0usize);
        // the seeds themselves first, then mutations
        let mut queue: Vec<Vec<u8>> = seeds.clone();
        while started.elapsed() < budget || !queue.is_empty() {
            let input = queue.pop().unwrap_or_else(|| mutate(&mut rng, &seeds, words));
            // kept in memory; the watchdog writes it out if it hangs
            reading.lock().unwrap().clone_from(&input);
            let outcome = std::panic::catch_unwind(|| read(&input));
            if outcome.is_err() {
                panics += 1;
                std::fs::write(worker_dir.join(format!("panic-{panics}")), &input).unwrap();
            }
            inputs += 1;
            if tx.send(Some((inputs, panics, REFUSED.with(|r| r.get())))).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    }).unwrap();
    let (mut inputs, mut panics, mut refused) = (0, 0, 0);
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some((i, p, r))) => (inputs, panics, refused) = (i, p, r),
            Ok(None) => break,
            Err(_) => {
                let path = out.join("hang");
                // the worker is stuck inside `read`, not holding the lock
                if let Ok(input) = current.try_lock() {
                    let _ = std::fs::write(&path, &*input);
                }
                panic!("{target}: an input ran for over 20 s; it is in {}", path.display());
            }
        }
    }
    worker.join().unwrap();
    let report = format!("{target}: {inputs} inputs in {:.0} s, {panics} panicked, {refused} fallible allocations over 1 GiB refused\n", budget.as_secs_f64());
    std::fs::write(out.join("report.txt"), &report).unwrap();
    eprint!("{report}");
    assert_eq!(panics, 0, "{target}: {panics} inputs panicked; they are in {}", out.display());
    assert!(inputs > seed_count, "{target}: no mutated input ran");
}

/// Panics on the fuzzing threads are expected and counted; printing each would flood the
/// log. Other threads keep the default report.
fn quiet_panics_on_fuzz_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !std::thread::current().name().is_some_and(|n| n.starts_with("fuzz-")) {
                default(info);
            }
        }));
    });
}

fn at(name: &str) -> PathBuf {
    Path::new("/fuzz").join(name)
}

const CONFIG_WORDS: &[&str] = &[
    "(", ")", "[", "]", ",", ":", "\"", "None", "Some(", "true", "1e308", "-1", "0", "NaN", "inf", "18446744073709551616", "kind", "model", "neuron", "units", "budget",
    "task", "train", "\n%%\n", "model.units=", "model.neuron.kind=", "train.steps=0", "=", ".", "plugins: [\"x\"]", "connectivity",
];

#[test]
fn fuzz_config_with_overrides() {
    fuzz("config", seeds("config", &["configs/quick", "configs/shd_adding"]), CONFIG_WORDS, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let (config, overrides) = text.split_once("\n%%\n").unwrap_or((&text, ""));
        let overrides: Vec<String> = overrides.lines().map(str::to_string).collect();
        let registry = elmlab_core::registry::Registry::builtin();
        let _ = elmlab_train::config::ResolvedConfig::from_text(config, "fuzz.ron", &overrides, &registry);
    });
}

#[test]
fn fuzz_shd_reader() {
    fuzz("shd", seeds("shd", &["tasks/tests/fixtures/shd_f16", "tasks/tests/fixtures/shd_f32", "tasks/tests/fixtures/shd_gz", "tasks/tests/fixtures/shd_broken"]), &[], |bytes| {
        let _ = elmlab_tasks::shd::data::parse(bytes.to_vec(), &at("shd_train.h5"));
    });
}

#[test]
fn fuzz_enwik8_reader() {
    fuzz("enwik8", seeds("enwik8", &[]), &[], |bytes| {
        let _ = elmlab_tasks::enwik8::parse_text(bytes.to_vec(), &at("enwik8"));
    });
}

#[test]
fn fuzz_safetensors_loader() {
    fuzz("safetensors", seeds("safetensors", &[]), &["{", "}", "\"dtype\":\"F32\"", "\"shape\":[", "\"data_offsets\":[0,", "\"__metadata__\""], |bytes| {
        let _ = elmlab_train::checkpoint::parse_tensors(bytes, &at("weights.safetensors"));
    });
}

#[test]
fn fuzz_npy_reader() {
    fuzz("npy", seeds("npy", &[]), &["'descr': '<f8'", "'shape': (", "9999999999, ", "4294967296, ", "'fortran_order': True", "<f4", ">f8", "<i8"], |bytes| {
        let _ = elmlab_train::npy::parse_npy(bytes, &at("batch.npy"));
    });
}

#[test]
fn fuzz_plugin_elf_reader() {
    fuzz("elf", seeds("elf", &[]), &[], |bytes| {
        let _ = elmlab_loader::elf::symbols(bytes, |_| true);
    });
}
