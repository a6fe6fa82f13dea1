//! Opening a plugin library, checking it, and adding its entries to the registry.

use crate::{compare, tensor_ids, PluginLoadError};
use elmlab_core::plugin::{HostContext, PluginEntries, RECORD_SYMBOL, REGISTER_SYMBOL};
use elmlab_core::registry::{Described, Family, Registry};
use std::ffi::{c_char, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Libraries whose entries were added, by canonical path and file identity (a hard link
/// opens the same library); they stay loaded for good.
static LOADED: Mutex<Vec<(PathBuf, FileId)>> = Mutex::new(Vec::new());

/// Device and inode: the dynamic linker opens a file once however it is named.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Result<FileId, PluginLoadError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| PluginLoadError::Read { path: path.to_path_buf(), source })?;
    Ok((meta.dev(), meta.ino()))
}

/// The libraries loaded into this process, in loading order.
pub fn loaded_libraries() -> Vec<PathBuf> {
    LOADED.lock().map(|l| l.iter().map(|(p, _)| p.clone()).collect()).unwrap_or_default()
}

/// Loads the plugin library at `path` and adds its entries to `registry`. A library
/// already loaded (same file) is not loaded again. On any refusal nothing is added.
pub fn load(path: &Path, registry: &mut Registry) -> Result<(), PluginLoadError> {
    let canonical = path.canonicalize().map_err(|source| PluginLoadError::Read { path: path.to_path_buf(), source })?;
    let id = file_id(&canonical)?;
    if LOADED.lock().map(|l| l.iter().any(|(_, known)| *known == id)).unwrap_or(false) {
        return Ok(());
    }
    let file = std::fs::read(&canonical).map_err(|source| PluginLoadError::Read { path: path.to_path_buf(), source })?;
    let entries = open_checked(&canonical, &file)?;
    let origin = canonical.display().to_string();
    // All names are checked before any is added, so a refused library leaves no trace.
    let mut clashes = Vec::new();
    clash(&registry.neurons, &entries.neurons, &mut clashes);
    clash(&registry.connectivity, &entries.connectivity, &mut clashes);
    clash(&registry.tasks, &entries.tasks, &mut clashes);
    if !clashes.is_empty() {
        return Err(PluginLoadError::Duplicate { path: canonical, message: clashes.join("; ") });
    }
    // Every call into the library's code goes through `tensor_ids::enter`.
    let add = |e: elmlab_core::error::RegistryError| PluginLoadError::Duplicate { path: canonical.clone(), message: e.to_string() };
    for e in &entries.neurons {
        registry.neurons.add_from_library(e, &origin, tensor_ids::enter).map_err(add)?;
    }
    for e in &entries.connectivity {
        registry.connectivity.add_from_library(e, &origin, tensor_ids::enter).map_err(add)?;
    }
    for e in &entries.tasks {
        registry.tasks.add_from_library(e, &origin, tensor_ids::enter).map_err(add)?;
    }
    tracing::debug!(library = %canonical.display(), neurons = entries.neurons.len(), connectivity = entries.connectivity.len(), tasks = entries.tasks.len(), "plugin loaded");
    if let Ok(mut loaded) = LOADED.lock() {
        loaded.push((canonical, id));
    }
    Ok(())
}

/// Names in `new` that `family` already has (or that `new` has twice), with both origins.
fn clash<E: Described + 'static>(family: &Family<E>, new: &[&'static E], out: &mut Vec<String>) {
    for (i, e) in new.iter().enumerate() {
        if let Some(existing) = family.origin_of(e.name()) {
            out.push(format!("{} `{}` is already registered by {existing}", family.noun(), e.name()));
        } else if new[..i].iter().any(|o| o.name() == e.name()) {
            out.push(format!("{} `{}` is registered twice by this library", family.noun(), e.name()));
        }
    }
}

/// Opens the library, checks its record, and calls its registration.
fn open_checked(path: &Path, file: &[u8]) -> Result<PluginEntries, PluginLoadError> {
    if !cfg!(all(target_os = "linux", target_pointer_width = "64")) {
        return Err(PluginLoadError::Unsupported { path: path.to_path_buf(), message: "runtime plugins are supported on 64-bit Linux only".into() });
    }
    // SAFETY: opening runs the library's initialisers; that is what loading a plugin means.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| PluginLoadError::NotALibrary { path: path.to_path_buf(), reason: e.to_string() })?;
    // Never unloaded: code and statics of the library may be referenced for the rest of
    // the process (entries, thread-local destructors), also after a refusal.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    let no_entry = |symbol| PluginLoadError::NoEntryPoint { path: path.to_path_buf(), symbol };
    // SAFETY: the symbol is declared by `export_plugin!` with exactly this signature; a
    // C function without arguments returning a pointer to NUL-terminated text.
    let record_fn = unsafe { library.get::<unsafe extern "C" fn() -> *const c_char>(RECORD_SYMBOL.as_bytes()) }.map_err(|_| no_entry(RECORD_SYMBOL))?;
    let record_at = *record_fn as usize;
    // SAFETY: see above; the text is checked for NULL and read up to its NUL.
    let text = unsafe {
        let ptr = record_fn();
        if ptr.is_null() {
            return Err(PluginLoadError::Unsupported { path: path.to_path_buf(), message: "its compatibility record is empty (NULL)".into() });
        }
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    };
    let mismatches = compare::compare(&text);
    if !mismatches.is_empty() {
        return Err(PluginLoadError::Incompatible { path: path.to_path_buf(), mismatches });
    }
    // SAFETY: as above; the record matched, so the signature is the one this host knows.
    let register = unsafe { library.get::<unsafe extern "C" fn(*const c_void, *mut c_void)>(REGISTER_SYMBOL.as_bytes()) }.map_err(|_| no_entry(REGISTER_SYMBOL))?;
    tensor_ids::attach(path, file, record_at)?;
    let host = HostContext { dispatch: tracing::dispatcher::get_default(|d| d.clone()) };
    let mut entries = PluginEntries::default();
    // SAFETY: same compiler, kernel, dependencies and features on both sides (the
    // record), so `HostContext` and `PluginEntries` have the same layout in the plugin.
    unsafe { register(&host as *const HostContext as *const c_void, &mut entries as *mut PluginEntries as *mut c_void) };
    Ok(entries)
}
