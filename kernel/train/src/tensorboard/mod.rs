//! TensorBoard logs beside `metrics.jsonl`: `runs/<name>/tb/` holds event files with the
//! same scalars (tag `<split>/<name>`), the wall-clock speed, and the HParams session
//! records, written without TensorFlow (see [`records`] and [`proto`]).

pub mod hparams;
pub mod proto;
pub mod records;

use crate::error::RunError;
use proto::Message;
use crate::trainer::Session;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Instant;

/// The hyperparameters a run records for TensorBoard: the model's sizes and the main
/// training settings, and the caller's (a sweep's swept values).
pub fn run_hparams(session: &Session, extra: &Map<String, Value>) -> Map<String, Value> {
    let cfg = &session.config.config;
    let mut h = Map::new();
    h.insert("task".into(), json!(cfg.task.kind));
    h.insert("neuron".into(), json!(cfg.model.neuron.kind));
    h.insert("connectivity".into(), json!(cfg.model.connectivity.kind));
    h.insert("N".into(), json!(session.plan.units));
    h.insert("k_e".into(), json!(session.plan.k_e));
    h.insert("k_c".into(), json!(session.plan.k_c));
    h.insert("params".into(), json!(session.plan.total_params));
    h.insert("seed".into(), json!(cfg.seed));
    h.insert("train.batch".into(), json!(cfg.train.batch));
    h.insert("train.steps".into(), json!(cfg.train.steps));
    h.insert("train.optimizer.lr".into(), json!(cfg.train.optimizer.lr));
    h.extend(extra.clone());
    h
}

/// The TensorBoard log of one run invocation.
pub struct TensorBoardLog {
    file: records::EventFile,
    /// The step and time of the last training line, for steps/s.
    last_train: Option<(u64, Instant)>,
}

fn io(path: &Path, e: std::io::Error) -> RunError {
    RunError::io(format!("writing the TensorBoard log {}", path.display()), e)
}

/// A `Summary.Value` holding a scalar.
fn scalar_value(tag: &str, value: f32) -> Message {
    Message::new().string(1, tag).float(2, value)
}

impl TensorBoardLog {
    /// Opens `dir` for a run starting (`resumed_at` None) or resuming after `step`: the
    /// events after that step are dropped first, as the metrics are.
    pub fn open(dir: &Path, resumed_at: Option<u64>, first_step: u64) -> Result<Self, RunError> {
        match resumed_at {
            Some(step) => records::truncate_after(dir, step).map_err(|e| io(dir, e))?,
            None => {
                for old in records::event_files(dir) {
                    std::fs::remove_file(&old).map_err(|e| io(&old, e))?;
                }
            }
        }
        let file = records::EventFile::create(dir).map_err(|e| io(dir, e))?;
        Ok(TensorBoardLog { file, last_train: Some((first_step, Instant::now())) })
    }

    /// Every number of a metrics line (the `step` aside) as a scalar `<split>/<key>`; a
    /// training line also gives `train/steps_per_s` since the previous one.
    pub fn metrics(&mut self, line: &Value) -> Result<(), RunError> {
        let Some(step) = line["step"].as_u64() else { return Ok(()) };
        let split = line["split"].as_str().unwrap_or("train");
        let mut summary = Message::new();
        if let Some(fields) = line.as_object() {
            for (key, v) in fields {
                if let (false, Some(x)) = (key == "step", v.as_f64()) {
                    summary = summary.message(1, scalar_value(&format!("{split}/{key}"), x as f32));
                }
            }
        }
        if split == "train" {
            let now = Instant::now();
            if let Some((from, at)) = self.last_train.replace((step, now)) {
                let seconds = now.duration_since(at).as_secs_f64();
                if step > from && seconds > 0.0 {
                    summary = summary.message(1, scalar_value("train/steps_per_s", ((step - from) as f64 / seconds) as f32));
                }
            }
        }
        self.file.summary(step, summary).map_err(|e| io(&self.file.path, e))
    }

    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), RunError> {
        self.file.summary(step, Message::new().message(1, scalar_value(tag, value as f32))).map_err(|e| io(&self.file.path, e))
    }

    pub fn session_start(&mut self, hparams: &Map<String, Value>, group: &str) -> Result<(), RunError> {
        self.file.summary(0, hparams::session_start(hparams, group, records::wall_time())).map_err(|e| io(&self.file.path, e))
    }

    pub fn session_end(&mut self, step: u64, status: hparams::Status) -> Result<(), RunError> {
        self.file.summary(step, hparams::session_end(status, records::wall_time())).map_err(|e| io(&self.file.path, e))
    }
}
