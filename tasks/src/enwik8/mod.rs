//! Enwik8 character-level language modelling (tasks.md): the first 10^8 bytes of a
//! Wikipedia dump, split 90M/5M/5M, `B` contiguous streams of `L`-symbol segments with
//! the recurrent state carried between segments (truncated BPTT) and randomly reset.

pub mod markov;

use elmlab_core::error::PluginError;
use elmlab_core::registry::{TaskEntry, TaskPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::Settings;
use elmlab_core::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Selection, Split, Task, TaskContext};
use rand::Rng;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const FULL_SIZE: usize = 100_000_000;
/// The most text a zip may unpack to (a damaged or hostile header cannot ask for more).
pub const MAX_TEXT: usize = 4 * FULL_SIZE;
const HINT: &str = "enwik8 is published on the Hutter Prize page (http://prize.hutter1.net/): download enwik8.zip and \
point `task.path` at it (or at the unzipped enwik8), or set `task.synthetic=true` for the synthetic text";

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct Enwik8Settings {
    /// the enwik8 file, or enwik8.zip
    #[setting(default = "data/enwik8")]
    pub path: String,
    /// use the synthetic Markov text: write it to `path` if missing
    #[setting(default = false)]
    pub synthetic: bool,
    /// length of the synthetic text
    #[setting(default = 2_000_000, min = 1000)]
    pub synthetic_bytes: usize,
    /// classes C: the training split's bytes plus an unknown symbol must fit
    #[setting(default = 204, min = 2, max = 256)]
    pub vocab_size: usize,
    /// L, symbols per training segment
    #[setting(default = 100, min = 1)]
    pub segment: usize,
    /// symbols per evaluation segment (state carried across them)
    #[setting(default = 100, min = 1)]
    pub eval_segment: usize,
    /// evaluate only the first this many bytes of a split (None: all)
    #[setting(min = 2)]
    pub eval_bytes: Option<usize>,
    /// one-hot inputs are scaled by this
    #[setting(default = 3.0, min = 0.0)]
    pub input_scale: f64,
    /// probability of resetting the carried state at step 0
    #[setting(default = 1.0, min = 0.0, max = 1.0)]
    pub reset_start: f64,
    /// … after `reset_steps` (cosine in between)
    #[setting(default = 0.01, min = 0.0, max = 1.0)]
    pub reset_end: f64,
    /// steps over which the reset probability decays
    #[setting(default = 40_000, min = 0)]
    pub reset_steps: u64,
    /// draw the reset per stream instead of once for the whole batch
    #[setting(default = false)]
    pub reset_per_stream: bool,
}

impl TaskPlugin for Enwik8Settings {
    const NAME: &'static str = "enwik8";
    const DOC: &'static str = "Enwik8 next-byte prediction in bits per byte (BPC), truncated BPTT over carried state";
    fn build(self, ctx: &TaskContext) -> Result<Box<dyn Task>, PluginError> {
        Ok(Box::new(Enwik8::new(self, ctx.seed)))
    }
}

elmlab_core::inventory::submit! { TaskEntry::of::<Enwik8Settings>() }

/// The split text as symbol indices.
pub struct Corpus {
    pub train: Vec<u8>,
    pub valid: Vec<u8>,
    pub test: Vec<u8>,
    /// Byte value of each known symbol, ascending; symbol `vocab.len()` is "unknown".
    pub vocab: Vec<u8>,
}

impl Corpus {
    /// Splits `bytes` 90/5/5 (exactly 90M/5M/5M for the real file) and encodes them with
    /// the training split's vocabulary.
    pub fn new(bytes: &[u8], vocab_size: usize) -> Result<Self, PluginError> {
        let n = bytes.len();
        let (train_len, valid_len) = if n == FULL_SIZE { (90_000_000, 5_000_000) } else { (n * 9 / 10, n / 20) };
        let (train, rest) = bytes.split_at(train_len);
        let (valid, test) = rest.split_at(valid_len);
        let mut seen = [false; 256];
        train.iter().for_each(|&b| seen[b as usize] = true);
        let vocab: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize]).collect();
        if vocab.len() + 1 > vocab_size {
            return Err(PluginError::data(format!(
                "the training split has {} distinct bytes; with the unknown symbol that needs vocab_size >= {}, but it is {vocab_size}",
                vocab.len(),
                vocab.len() + 1
            )));
        }
        let mut index = [vocab.len() as u8; 256];
        vocab.iter().enumerate().for_each(|(i, &b)| index[b as usize] = i as u8);
        let encode = |s: &[u8]| s.iter().map(|&b| index[b as usize]).collect::<Vec<u8>>();
        Ok(Corpus { train: encode(train), valid: encode(valid), test: encode(test), vocab })
    }

    pub fn unknown(&self) -> usize {
        self.vocab.len()
    }

    fn split(&self, split: Split) -> &[u8] {
        match split {
            Split::Train => &self.train,
            Split::Valid => &self.valid,
            Split::Test => &self.test,
        }
    }
}

/// Reads `enwik8` or a zip holding it.
pub fn read_text(path: &Path) -> Result<Vec<u8>, PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::data(format!("cannot read {}: {e}; {HINT}", path.display())))?;
    parse_text(bytes, path)
}

/// The text of `enwik8`'s bytes or of a zip holding it; `path` names it in errors.
pub fn parse_text(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, PluginError> {
    let bytes = if bytes.starts_with(b"PK\x03\x04") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| PluginError::data(format!("{}: not a readable zip: {e}; {HINT}", path.display())))?;
        if zip.is_empty() {
            return Err(PluginError::data(format!("{}: the zip is empty; {HINT}", path.display())));
        }
        let index = (0..zip.len()).find(|&i| zip.by_index(i).map(|e| e.name() == "enwik8").unwrap_or(false)).unwrap_or(0);
        let entry = zip.by_index(index).map_err(|e| PluginError::data(format!("{}: {e}", path.display())))?;
        // the size in the zip's header is the file's word, not a fact: read at most the
        // limit, growing as the data arrives
        let mut out = Vec::with_capacity((entry.size() as usize).min(FULL_SIZE));
        entry.take(MAX_TEXT as u64 + 1).read_to_end(&mut out).map_err(|e| PluginError::data(format!("{}: {e}", path.display())))?;
        if out.len() > MAX_TEXT {
            return Err(PluginError::data(format!("{}: the zip holds more than {MAX_TEXT} bytes of text; enwik8 is {FULL_SIZE}; {HINT}", path.display())));
        }
        out
    } else {
        bytes
    };
    if bytes.len() != FULL_SIZE {
        tracing::warn!(path = %path.display(), bytes = bytes.len(), "not the 10^8 bytes of enwik8: splitting 90/5/5 by proportion");
    }
    if bytes.len() < 100 {
        return Err(PluginError::data(format!("{}: only {} bytes; {HINT}", path.display(), bytes.len())));
    }
    Ok(bytes)
}

pub struct Enwik8 {
    s: Enwik8Settings,
    seed: u64,
    corpus: OnceLock<Result<Corpus, String>>,
}

impl Enwik8 {
    pub fn new(s: Enwik8Settings, seed: u64) -> Self {
        Enwik8 { s, seed, corpus: OnceLock::new() }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.s.path)
    }

    fn corpus(&self) -> Result<&Corpus, PluginError> {
        self.corpus
            .get_or_init(|| {
                let path = self.path();
                if self.s.synthetic && !path.is_file() {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    }
                    let source = markov::MarkovSource::new(0);
                    tracing::info!(path = %path.display(), entropy_rate = source.entropy_rate(), unigram_entropy = source.unigram_entropy(), "writing the synthetic Markov text (bits per byte)");
                    elmlab_core::fs::write_atomic(&path, &source.generate(self.s.synthetic_bytes)).map_err(|e| elmlab_core::error::chain(&e))?;
                }
                let chain = |e: PluginError| elmlab_core::error::chain(&e);
                Corpus::new(&read_text(&path).map_err(chain)?, self.s.vocab_size).map_err(chain)
            })
            .as_ref()
            .map_err(|m| PluginError::data(m.clone()))
    }

    /// Probability of resetting the carried state before `step`: cosine from
    /// `reset_start` to `reset_end` over `reset_steps`, then constant.
    pub fn reset_probability(&self, step: u64) -> f64 {
        let (start, end, span) = (self.s.reset_start, self.s.reset_end, self.s.reset_steps);
        if span == 0 || step >= span {
            return end;
        }
        end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / span as f64).cos())
    }

    /// Segment `L` symbols from `offset` in every listed stream start, with next-symbol targets.
    fn segment_batch(&self, text: &[u8], starts: &[usize], len: usize, carry: Carry) -> Batch {
        let batch = starts.len();
        let mut symbols = vec![0u32; len * batch];
        let mut targets = vec![0usize; len * batch];
        for (b, &start) in starts.iter().enumerate() {
            for t in 0..len {
                symbols[t * batch + b] = text[start + t] as u32;
                targets[t * batch + b] = text[start + t + 1] as usize;
            }
        }
        Batch { steps: len, batch, inputs: Inputs::OneHot { symbols, scale: self.s.input_scale as f32 }, targets, carry }
    }
}

impl Task for Enwik8 {
    fn input_width(&self) -> usize {
        self.s.vocab_size
    }
    fn classes(&self) -> usize {
        self.s.vocab_size
    }
    fn sequence_length(&self) -> usize {
        self.s.segment
    }
    fn loss_at(&self) -> LossAt {
        LossAt::EveryStep
    }
    fn check_data(&self) -> Result<(), PluginError> {
        self.corpus().map(|_| ())
    }
    fn selection(&self) -> Selection {
        Selection { metric: "bits_per_byte", higher_is_better: false }
    }
    fn extra_metrics(&self) -> &'static [&'static str] {
        &["bits_per_byte"]
    }

    /// Stream `b` covers `[b·S, (b+1)·S)` of the training split; step `s` reads segment
    /// `s mod K` of every stream (`K` segments fit a stream), so the streams cover the
    /// split contiguously and wrap around; the state is reset at every wrap.
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        let text = &self.corpus()?.train;
        let stream_len = text.len() / batch;
        let per_stream = stream_len.saturating_sub(1) / self.s.segment;
        if per_stream == 0 {
            return Err(PluginError::data(format!(
                "the training split ({} symbols) is too short for {batch} streams of {}-symbol segments",
                text.len(),
                self.s.segment
            )));
        }
        let k = (step % per_stream as u64) as usize;
        let starts: Vec<usize> = (0..batch).map(|b| b * stream_len + k * self.s.segment).collect();
        let mut rng = stream(self.seed, "enwik8/reset", step);
        let p = self.reset_probability(step);
        let reset = if k == 0 {
            vec![true; batch]
        } else if self.s.reset_per_stream {
            (0..batch).map(|_| rng.gen::<f64>() < p).collect()
        } else {
            vec![rng.gen::<f64>() < p; batch]
        };
        Ok(self.segment_batch(text, &starts, self.s.segment, Carry::Continue { reset }))
    }

    /// The whole split (or its first `eval_bytes`) in order, one stream, state carried
    /// and never reset; produced lazily, segment by segment.
    fn eval_batches(&self, split: Split, _batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        let text = self.corpus()?.split(split);
        let usable = self.s.eval_bytes.map_or(text.len(), |n| n.min(text.len()));
        let predicted = usable.saturating_sub(1);
        let seg = self.s.eval_segment;
        Ok(Box::new((0..predicted.div_ceil(seg)).map(move |i| {
            let start = i * seg;
            let len = seg.min(predicted - start);
            Ok(self.segment_batch(text, &[start], len, Carry::Continue { reset: vec![i == 0] }))
        })))
    }
}

#[cfg(test)]
mod tests;
