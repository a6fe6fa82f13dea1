//! One file over HTTP(S): into `NAME.partial`, continued with a range request after a
//! dropped connection or an interrupted run, then checked against its published size and
//! digest before it takes its name. A file that fails the check is kept (renamed
//! `NAME.rejected`), never overwritten silently.

use super::catalog::Digest;
use anyhow::{bail, Context, Result};
use md5::Md5;
use sha2::Sha256;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What the downloaded file must be.
#[derive(Clone, Debug)]
pub struct Expected {
    pub size: Option<u64>,
    pub digest: Digest,
    pub source: String,
}

/// Reports bytes as they arrive.
pub trait Progress {
    fn start(&mut self, _name: &str, _total: Option<u64>, _already: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

#[cfg(test)]
pub struct Quiet;
#[cfg(test)]
impl Progress for Quiet {}

pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

pub fn rejected_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".rejected");
    dest.with_file_name(name)
}

/// The file's digest in the algorithm of `like`, as lowercase hex.
pub fn digest_of(path: &Path, like: Digest) -> Result<String> {
    match like {
        Digest::Md5(_) => hash_file::<Md5>(path),
        Digest::Sha256(_) => hash_file::<Sha256>(path),
    }
}

fn hash_file<H: sha2::Digest>(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = H::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(elmlab_train::integrity::hex(&hasher.finalize()))
}

fn describe(d: Digest) -> (&'static str, &'static str) {
    match d {
        Digest::Md5(h) => ("MD5", h),
        Digest::Sha256(h) => ("SHA-256", h),
    }
}

/// Checks a complete file; the error says what differs.
pub fn verify(path: &Path, expected: &Expected) -> Result<()> {
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    let mut wrong = Vec::new();
    if let Some(want) = expected.size.filter(|&w| w != size) {
        wrong.push(format!("it has {size} bytes, the published file {want}"));
    }
    let (algorithm, want) = describe(expected.digest);
    let got = digest_of(path, expected.digest)?;
    if got != want {
        wrong.push(format!("its {algorithm} is {got}, the published one {want} (from {})", expected.source));
    }
    if !wrong.is_empty() {
        bail!("{}: {}", path.display(), wrong.join("; "));
    }
    Ok(())
}

/// How often a dropped connection is continued before giving up.
const ATTEMPTS: usize = 5;

/// Downloads `url` to `dest` (see the module comment). A `dest` already there is checked,
/// not downloaded again.
pub fn fetch(url: &str, dest: &Path, expected: &Expected, progress: &mut dyn Progress) -> Result<()> {
    if dest.exists() {
        return verify(dest, expected).with_context(|| format!("{} is already there but is not the published file; move it away to download again", dest.display()));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = partial_path(dest);
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_string();
    let mut last_error = None;
    for attempt in 1..=ATTEMPTS {
        match continue_download(url, &partial, &name, expected.size, progress) {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(e) => {
                let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                tracing::warn!("{url}: {e:#} (attempt {attempt} of {ATTEMPTS}; {have} bytes so far)");
                last_error = Some(e);
                if attempt < ATTEMPTS {
                    // a server or network that has just failed often needs a moment
                    std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
                }
            }
        }
    }
    progress.finish();
    if let Some(e) = last_error {
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let kept = if have > 0 { format!("the {have} bytes that arrived are kept in {} and the next `elmlab data fetch` continues from there", partial.display()) } else { "nothing arrived".to_string() };
        if have == 0 {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e.context(format!("downloading {url} failed {ATTEMPTS} times; {kept}")));
    }
    if let Err(e) = verify(&partial, expected) {
        let rejected = rejected_path(dest);
        std::fs::rename(&partial, &rejected).with_context(|| format!("renaming {}", partial.display()))?;
        bail!("{e:#}\nthe download is kept as {} (not used); the mirror may serve another release: compare with the dataset's page, delete it to try again", rejected.display());
    }
    std::fs::rename(&partial, dest).with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    Ok(())
}

/// Appends the rest of `url` to `partial`, asking for the bytes after what it holds.
fn continue_download(url: &str, partial: &Path, name: &str, size: Option<u64>, progress: &mut dyn Progress) -> Result<()> {
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if size.is_some_and(|s| have == s) {
        return Ok(());
    }
    let mut request = ureq::get(url);
    if have > 0 {
        request = request.header("Range", &format!("bytes={have}-"));
    }
    let mut response = request.call().with_context(|| format!("requesting {url}"))?;
    let status = response.status().as_u16();
    let resumed = status == 206;
    if !(status == 200 || resumed) {
        bail!("{url} answered HTTP {status}");
    }
    let length: Option<u64> = response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let start = if resumed { have } else { 0 };
    let mut file = std::fs::OpenOptions::new().create(true).write(true).append(resumed).truncate(!resumed).open(partial).with_context(|| format!("opening {}", partial.display()))?;
    progress.start(name, length.map(|l| l + start).or(size), start);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("reading {url}"))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).with_context(|| format!("writing {}", partial.display()))?;
        received += n as u64;
        progress.advance(n as u64);
    }
    file.flush()?;
    if let Some(l) = length.filter(|&l| received < l) {
        bail!("the connection closed after {received} of {l} bytes");
    }
    Ok(())
}
