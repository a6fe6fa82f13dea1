//! Training progress: a bar on a terminal, periodic log lines elsewhere (cluster logs).

use elmlab_train::trainer::Observer;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    first_step: u64,
    total: u64,
    last_loss: f32,
}

impl Progress {
    pub fn new() -> Self {
        Progress { bar: None, started: Instant::now(), first_step: 0, total: 0, last_loss: f32::NAN }
    }

    fn rate(&self, step: u64) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 { (step - self.first_step) as f64 / secs } else { 0.0 }
    }
}

fn short(line: &Value) -> String {
    let obj = line.as_object().cloned().unwrap_or_default();
    obj.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "step" | "split"))
        .map(|(k, v)| match v.as_f64() {
            Some(x) => format!("{k} {x:.4}"),
            None => format!("{k} {v}"),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

impl Observer for Progress {
    fn started(&mut self, first_step: u64, total: u64) {
        self.started = Instant::now();
        self.first_step = first_step;
        self.total = total;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total).with_position(first_step);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]").unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar = Some(bar);
        }
    }

    fn step_done(&mut self, step: u64, loss: f32) {
        self.last_loss = loss;
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(format!("loss {loss:.4}  {:.1} steps/s", self.rate(step)));
        }
    }

    fn metrics(&mut self, line: &Value) {
        let step = line["step"].as_u64().unwrap_or(0);
        let split = line["split"].as_str().unwrap_or("");
        let text = format!("step {step}/{} {split}: {}", self.total, short(line));
        match &self.bar {
            Some(bar) if split == "valid" => bar.println(text),
            Some(_) => {}
            None => {
                let rate = self.rate(step);
                let eta = if rate > 0.0 { (self.total - step) as f64 / rate } else { 0.0 };
                tracing::info!("{text}  ({rate:.1} steps/s, eta {eta:.0}s)");
            }
        }
    }

    fn finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
