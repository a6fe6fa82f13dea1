//! `elmlab data fetch`: the published datasets, downloaded and checked.

pub mod catalog;
pub mod download;

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A progress bar on a terminal, nothing elsewhere.
struct Bar(Option<indicatif::ProgressBar>);

impl download::Progress for Bar {
    fn start(&mut self, name: &str, total: Option<u64>, already: u64) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("downloading {name}{}", if already > 0 { format!(" (continuing after {already} bytes)") } else { String::new() });
            return;
        }
        let bar = total.map(indicatif::ProgressBar::new).unwrap_or_else(indicatif::ProgressBar::new_spinner);
        bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        bar.set_message(name.to_string());
        bar.set_position(already);
        self.0 = Some(bar);
    }
    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

pub fn run(dataset: &str, dir: Option<&Path>, mirror: Option<&str>) -> Result<i32> {
    let Some(set) = catalog::find(dataset) else {
        let names: Vec<&str> = catalog::DATASETS.iter().map(|d| d.name).collect();
        bail!("no dataset `{dataset}`; elmlab can fetch: {}", names.join(", "));
    };
    let dir = dir.unwrap_or(Path::new(set.default_dir));
    let base = mirror.unwrap_or(set.mirrors[0]);
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    for file in set.files {
        let url = format!("{base}{}", file.path);
        let dest = dir.join(file.name);
        let expected = download::Expected { size: file.size, digest: file.digest, source: file.source.to_string() };
        let was_there = dest.exists();
        download::fetch(&url, &dest, &expected, &mut Bar(None)).with_context(|| format!("fetching {} ({})", file.name, set.name))?;
        println!("{} {} (checksum matches the published one)", if was_there { "verified" } else { "downloaded" }, dest.display());
    }
    println!("{}: {}", set.name, set.next.replace("DIR", &dir.display().to_string()));
    Ok(0)
}

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
