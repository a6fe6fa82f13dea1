//! Checksums that let a run tell a good file from a damaged one: a SHA-256 of every
//! safetensors file's contents in its own metadata (so a weights file copied anywhere
//! still verifies), and a manifest of every file of a checkpoint, written last.

use crate::error::{CheckpointError, CheckpointProblem as P, RunError};
use elmlab_core::fs::write_atomic;
use safetensors::tensor::SafeTensors;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The metadata key of a safetensors file's content checksum.
pub const CONTENT_SHA256: &str = "content_sha256";
/// The file in a checkpoint directory that lists its files' checksums.
pub const MANIFEST: &str = "manifest.json";

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 over what a safetensors file holds, independent of its header layout: every
/// tensor (name, dtype, shape, bytes) in name order, then every metadata entry but the
/// checksum itself, in key order.
pub fn content_digest<'a>(tensors: impl IntoIterator<Item = (&'a str, String, &'a [usize], &'a [u8])>, metadata: &HashMap<String, String>) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, dtype, shape, data) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(dtype.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let meta: BTreeMap<_, _> = metadata.iter().filter(|(k, _)| k.as_str() != CONTENT_SHA256).collect();
    for (k, v) in meta {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    hex(&h.finalize())
}

/// Checks a parsed safetensors file against the checksum in its metadata, if it has one
/// (files written elsewhere or by an earlier elmlab have none and are taken as they are).
pub fn verify_content(path: &Path, st: &SafeTensors, metadata: &HashMap<String, String>) -> Result<(), CheckpointError> {
    let Some(expected) = metadata.get(CONTENT_SHA256) else {
        return Ok(());
    };
    let tensors = st.tensors();
    let got = content_digest(tensors.iter().map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())), metadata);
    if &got != expected {
        return Err(CheckpointError { path: path.to_path_buf(), problem: P::Checksum { expected: expected.clone(), got } });
    }
    Ok(())
}

/// Writes the manifest of the files now in `dir` (the last file of a checkpoint).
pub fn write_manifest(dir: &Path) -> Result<(), RunError> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| RunError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == MANIFEST || name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| RunError::io(format!("reading {}", entry.path().display()), e))?;
        files.insert(name, sha256_hex(&bytes));
    }
    let manifest = serde_json::json!({ "format": "elmlab-checkpoint-1", "sha256": files });
    Ok(write_atomic(&dir.join(MANIFEST), serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes())?)
}

/// How a checkpoint directory checked out.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Every file the manifest lists is there with its checksum.
    Verified,
    /// No manifest: written by an elmlab from before checksums.
    Unverified,
}

/// Checks every file of a checkpoint against its manifest; `required` files must be listed.
pub fn verify_checkpoint(dir: &Path, required: &[&str]) -> Result<Checked, CheckpointError> {
    let path = dir.join(MANIFEST);
    let fail = |problem: P| CheckpointError { path: path.clone(), problem };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checked::Unverified),
        Err(e) => return Err(fail(P::Manifest(e.to_string()))),
    };
    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(P::Manifest(e.to_string())))?;
    let Some(files) = manifest["sha256"].as_object() else {
        return Err(fail(P::Manifest("no `sha256` table".into())));
    };
    if let Some(missing) = required.iter().find(|r| !files.contains_key(**r)) {
        return Err(fail(P::Manifest(format!("does not list {missing}"))));
    }
    for (name, expected) in files {
        let file = dir.join(name);
        let bytes = std::fs::read(&file).map_err(|e| CheckpointError { path: file.clone(), problem: P::Unreadable(e.to_string()) })?;
        let got = sha256_hex(&bytes);
        if Some(got.as_str()) != expected.as_str() {
            return Err(CheckpointError { path: file, problem: P::Checksum { expected: expected.as_str().unwrap_or("").to_string(), got } });
        }
    }
    Ok(Checked::Verified)
}
