//! One tensor numbering for the host and its plugin libraries.
//!
//! dfdx 0.13 numbers tensors from a private counter; gradients are keyed by that number
//! and the backward pass runs the recorded operations in decreasing number order. A
//! shared library carries its own copy of the counter, starting at 0: plugin tensors
//! would share numbers with host tensors (mixing their gradients), and a separate range
//! per library would break the order (the backward pass would run the plugin's
//! operations before the host's that came after them). So the counters are kept as one:
//! before plugin code runs the library's counter is set to the host's, and afterwards
//! the host's continues from where the library's stopped ([`bridge`]).
//!
//! The counters are found through the symbol tables of the executable and the library
//! (dfdx is the same version on both sides: the compatibility record says so).

use super::{elf, PluginLoadError};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// dfdx's `tensor::unique_id::unique_id::COUNTER`, mangled (legacy scheme), without its hash.
const COUNTER_SYMBOL: &str = "_ZN4dfdx6tensor9unique_id9unique_id7COUNTER17h";
/// This module's [`host_anchor`], mangled, without its hash.
const ANCHOR_SYMBOL: &str = "_ZN13elmlab_loader10tensor_ids11host_anchor17h";

/// The counters of the loaded libraries.
static LIBRARIES: Mutex<Vec<&'static AtomicUsize>> = Mutex::new(Vec::new());

/// A function whose address locates the executable in memory.
#[inline(never)]
fn host_anchor() -> usize {
    0x00e1_71ab
}

/// Finds dfdx's counter in `file`, given the run-time address of the symbol `anchor`
/// (a name or a prefix) of the same file.
fn find_counter(file: &[u8], anchor: &str, anchor_at: usize) -> Result<&'static AtomicUsize, String> {
    let mut symbols = elf::symbols(file, |n| n.starts_with(anchor) || n.starts_with(COUNTER_SYMBOL)).map_err(|e| format!("cannot read its symbol table: {e}"))?;
    // Exported symbols are in both tables.
    symbols.sort_by(|a, b| (&a.name, a.value).cmp(&(&b.name, b.value)));
    symbols.dedup();
    let anchors: Vec<_> = symbols.iter().filter(|s| s.name.starts_with(anchor)).collect();
    let [anchor] = anchors.as_slice() else { return Err(format!("`{anchor}` appears {} times in its symbol table, expected once", anchors.len())) };
    let counters: Vec<_> = symbols.iter().filter(|s| s.name.starts_with(COUNTER_SYMBOL) && s.size == 8).collect();
    let [counter] = counters.as_slice() else {
        return Err(format!("dfdx's tensor counter appears {} times in its symbol table, expected once (files stripped of symbols cannot be used: keep `strip` off or at \"debuginfo\")", counters.len()));
    };
    let address = (anchor_at as u64).wrapping_sub(anchor.value).wrapping_add(counter.value) as usize;
    if address == 0 || address % std::mem::align_of::<AtomicUsize>() != 0 {
        return Err("dfdx's tensor counter is at an impossible address".into());
    }
    // SAFETY: the symbol is dfdx's `static COUNTER: AtomicUsize` (8 bytes, aligned) of a
    // file that is mapped in this process; its address is the file's load address
    // (the anchor's run-time address minus its file address) plus its file address.
    Ok(unsafe { &*(address as *const AtomicUsize) })
}

/// The host's counter (in the running executable), found once.
fn host_counter() -> Result<&'static AtomicUsize, String> {
    static HOST: OnceLock<Result<&'static AtomicUsize, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate the elmlab executable: {e}"))?;
        let file = std::fs::read(&exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
        find_counter(&file, ANCHOR_SYMBOL, host_anchor as *const () as usize).map_err(|e| format!("the elmlab executable {}: {e}", exe.display()))
    })
    .clone()
}

/// Joins the counter of a just-opened library (`file`; `record_at` is the run-time
/// address of its record function) to the host's, before any of its code made a tensor.
pub fn attach(path: &Path, file: &[u8], record_at: usize) -> Result<(), PluginLoadError> {
    let unsupported = |message: String| PluginLoadError::Unsupported { path: path.to_path_buf(), message };
    let host = host_counter().map_err(unsupported)?;
    let library = find_counter(file, elmlab_core::plugin::RECORD_SYMBOL, record_at).map_err(unsupported)?;
    if std::ptr::eq(host, library) {
        return Err(unsupported("its tensor counter is the executable's (is it the executable itself?)".into()));
    }
    library.store(host.load(Ordering::SeqCst), Ordering::SeqCst);
    LIBRARIES.lock().unwrap_or_else(|p| p.into_inner()).push(library);
    Ok(())
}

/// Runs `f`, which may run plugin code that makes tensors, with one numbering: every
/// library continues from the host's count, and the host continues from the highest.
/// Without loaded libraries it is just `f()`.
pub fn bridge<R>(f: impl FnOnce() -> R) -> R {
    let libraries = LIBRARIES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(host) = (!libraries.is_empty()).then(host_counter).and_then(Result::ok) else { return f() };
    let start = host.load(Ordering::SeqCst);
    for l in &libraries {
        l.store(start, Ordering::SeqCst);
    }
    let out = f();
    let end = libraries.iter().map(|l| l.load(Ordering::SeqCst)).chain([host.load(Ordering::SeqCst)]).max().unwrap_or(start);
    host.store(end, Ordering::SeqCst);
    out
}

/// [`bridge`] as the registry's plugin boundary (`elmlab_core::registry::Enter`): the
/// loader registers a library's entries with it, so every call into the library's
/// code runs inside.
pub fn enter(f: &mut dyn FnMut()) {
    bridge(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anchor's mangled name follows this module's path: moving or renaming it must
    /// change [`ANCHOR_SYMBOL`] too, or every runtime plugin is refused.
    #[test]
    fn the_anchor_is_found_in_the_running_executable() {
        assert_eq!(host_anchor(), 0x00e1_71ab);
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let found = elf::symbols(&exe, |n| n.starts_with(ANCHOR_SYMBOL)).unwrap();
        assert!(!found.is_empty(), "{ANCHOR_SYMBOL} is not in this executable's symbol table");
        assert!(found.iter().all(|s| s.name == found[0].name), "{found:?}");
    }
}
