//! Loading runtime plugins named on the command line or in a config.

use anyhow::{Context, Result};
use elmlab_train::config::{anchor_plugins, plugins_in, Node, ResolvedConfig};
use elmlab_train::rundir::RunDir;
use elmlab_loader as plugin;
use elmlab_core::registry::Registry;
use std::path::Path;

/// Loads the `--plugin` libraries (paths relative to the working directory, or names).
pub fn load_given(registry: &mut Registry, given: &[String]) -> Result<()> {
    for g in given {
        plugin::load(&plugin::resolve(g, Path::new("."))?, registry)?;
    }
    Ok(())
}

/// Loads the libraries of a config's `plugins` list.
pub fn load_for_config(registry: &mut Registry, config: &Path, overrides: &[String]) -> Result<()> {
    let dir = config.parent().unwrap_or(Path::new("."));
    for g in ResolvedConfig::plugins_of(config, overrides)? {
        plugin::load(&plugin::resolve(&g, dir)?, registry).with_context(|| format!("`plugins` of {}", config.display()))?;
    }
    Ok(())
}

/// Loads the libraries the config stored in a run directory names (nothing if `run_dir`
/// is not one: the command says so itself).
pub fn load_for_run(registry: &mut Registry, run_dir: &Path) -> Result<()> {
    match RunDir::open(run_dir) {
        Ok(run) => load_for_config(registry, &run.config_path(), &[]),
        Err(_) => Ok(()),
    }
}

/// Loads the libraries of the `plugins` list of a comparison's `base` config.
pub fn load_for_compare(registry: &mut Registry, file: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(file) else { return Ok(()) };
    let Some(mut base) = Node::parse_ron(&text, &file.display().to_string()).ok().and_then(|t| t.get("base").cloned()) else { return Ok(()) };
    anchor_plugins(&mut base, file)?;
    for g in plugins_in(&base)? {
        plugin::load(&plugin::resolve(&g, Path::new("."))?, registry).with_context(|| format!("`base.plugins` of {}", file.display()))?;
    }
    Ok(())
}

/// Loads the libraries a sweep file's base config names.
pub fn load_for_sweep(registry: &mut Registry, file: &Path) -> Result<()> {
    let Ok(spec) = crate::sweep::spec::SweepSpec::load(file) else { return Ok(()) };
    for g in plugins_in(&spec.base)? {
        plugin::load(&plugin::resolve(&g, Path::new("."))?, registry).with_context(|| format!("`plugins` of the base config of {}", file.display()))?;
    }
    Ok(())
}

/// Loads the libraries the configs of a sweep manifest name (nothing if it is not one:
/// the command says so itself).
pub fn load_for_manifest(registry: &mut Registry, manifest: &Path) -> Result<()> {
    let Ok(m) = crate::sweep::manifest::Manifest::read(manifest) else { return Ok(()) };
    for e in &m.entries {
        let tree = Node::parse_ron(&e.config, &format!("manifest entry {}", e.index))?;
        for g in plugins_in(&tree)? {
            plugin::load(&plugin::resolve(&g, Path::new("."))?, registry).with_context(|| format!("`plugins` of manifest entry {}", e.index))?;
        }
    }
    Ok(())
}

/// The global options a child `elmlab` (a sweep's or a compare's run, a Slurm job) must
/// be given to see what this process sees: the libraries loaded with --plugin and the
/// --max-memory limit.
pub fn inherited_args() -> Vec<std::ffi::OsString> {
    let mut args = Vec::new();
    for lib in plugin::loaded_libraries() {
        args.push("--plugin".into());
        args.push(lib.into_os_string());
    }
    if let Some(limit) = elmlab_train::memory::given_limit() {
        args.push("--max-memory".into());
        args.push(limit.to_string().into());
    }
    args
}
