//! Where a plugin named on the command line or in a config is found.

use crate::PluginLoadError;
use elmlab_core::plugin::is_path;
use std::path::{Path, PathBuf};

/// Directories (separated like `PATH`) searched for plugins given by name.
pub const SEARCH_PATH_VAR: &str = "ELMLAB_PLUGIN_PATH";

/// The library `given` names. Something that looks like a path (it has a directory part
/// or ends in a library suffix) or names a file in `base` is taken relative to `base`;
/// any other name `x` is looked up
/// as `libx.so`, `x.so` and `x` (also with `-` read as `_`) in the directories of
/// `ELMLAB_PLUGIN_PATH`, then in the directory of the running executable.
pub fn resolve(given: &str, base: &Path) -> Result<PathBuf, PluginLoadError> {
    let as_path = Path::new(given);
    let mut looked = Vec::new();
    if is_path(given) || base.join(as_path).is_file() {
        let path = if as_path.is_absolute() { as_path.to_path_buf() } else { base.join(as_path) };
        if path.is_file() {
            return Ok(path);
        }
        looked.push(path);
    } else {
        let mut dirs: Vec<PathBuf> = std::env::var_os(SEARCH_PATH_VAR).map(|v| std::env::split_paths(&v).filter(|d| !d.as_os_str().is_empty()).collect()).unwrap_or_default();
        if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
            dirs.push(dir);
        }
        let underscored = given.replace('-', "_");
        let mut names = Vec::new();
        for stem in [given, underscored.as_str()] {
            for name in [format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX), format!("{stem}{}", std::env::consts::DLL_SUFFIX), stem.to_string()] {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        for dir in dirs {
            for name in &names {
                let path = dir.join(name);
                if path.is_file() {
                    return Ok(path);
                }
                looked.push(path);
            }
        }
    }
    Err(PluginLoadError::NotFound { given: given.to_string(), looked: looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_base_and_names_use_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(format!("{}my_plugin{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
        std::fs::write(&lib, b"").unwrap();
        let file_name = lib.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(resolve(&format!("./{file_name}"), dir.path()).unwrap(), dir.path().join(format!("./{file_name}")));
        let missing = resolve("sub/none.so", dir.path()).unwrap_err().to_string();
        assert!(missing.contains("sub/none.so") && missing.contains("not found"), "{missing}");
        // The only test that sets the variable (tests run in threads of one process).
        std::env::set_var(SEARCH_PATH_VAR, dir.path());
        assert_eq!(resolve("my-plugin", Path::new("/nowhere")).unwrap(), lib);
        let err = resolve("other", Path::new("/nowhere")).unwrap_err().to_string();
        assert!(err.contains(&dir.path().join("libother.so").display().to_string()), "{err}");
        std::env::remove_var(SEARCH_PATH_VAR);
    }
}
