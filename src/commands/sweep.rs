//! `elmlab sweep plan|run|submit|collect`.

use crate::cli::SweepCommand;
use crate::sweep::collect::collect;
use crate::sweep::manifest::{index_ranges, parse_index_ranges, Manifest, MANIFEST};
use crate::sweep::slurm::{array_script, collect_script, sbatch, SlurmOptions};
use crate::sweep::spec::SweepSpec;
use crate::sweep::{local, plan};
use anyhow::{bail, Context, Result};
use elmlab_core::registry::Registry;
use elmlab_train::rundir::{write_atomic, RunState};
use std::path::{Path, PathBuf};

pub fn run(registry: &Registry, command: SweepCommand) -> Result<i32> {
    match command {
        SweepCommand::Plan { file, out } => plan_cmd(registry, &file, out),
        SweepCommand::Run { manifest, jobs } => run_cmd(registry, &manifest, jobs),
        SweepCommand::Submit { manifest, slurm, partition, gres, time, cpus, mem, account, max_parallel, signal_before, indices, binary, dry_run } => {
            if !slurm {
                bail!("say which scheduler: `--slurm` (the only one supported)");
            }
            let options = SlurmOptions { partition, gres, time, cpus, mem, max_parallel, signal_before_s: signal_before, account };
            submit_cmd(&manifest, &options, indices.as_deref(), binary.as_deref(), dry_run)
        }
        SweepCommand::Collect { dir } => collect_cmd(registry, &dir),
    }
}

fn plan_cmd(registry: &Registry, file: &Path, out: Option<PathBuf>) -> Result<i32> {
    let spec = SweepSpec::load(file)?;
    let entries = plan::plan(&spec, registry)?;
    let dir = out.unwrap_or_else(|| spec.out_dir.join(&spec.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(MANIFEST);
    if path.is_file() {
        let old = Manifest::read(&path)?;
        let changed = old.entries.len() != entries.len() || old.entries.iter().zip(&entries).any(|(a, b)| a.id != b.id);
        if changed {
            tracing::warn!("{} existed with other runs; replaced (run directories are kept by id, so unchanged runs are still reused)", path.display());
        }
    }
    Manifest::write(&path, &entries)?;
    print!("{}", plan::table(&entries));
    let distinct: std::collections::BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    println!("{} runs ({} distinct configs) → {}", entries.len(), distinct.len(), path.display());
    println!("next: elmlab sweep run {} --jobs 2   |   elmlab sweep submit {} --slurm --dry-run", path.display(), path.display());
    Ok(0)
}

fn run_cmd(registry: &Registry, manifest: &Path, jobs: usize) -> Result<i32> {
    let manifest = Manifest::read(manifest)?;
    let outcome = local::run(&manifest, jobs)?;
    let collected = collect(&manifest, registry)?;
    println!("{} of {} runs finished; table: {}", collected.finished, manifest.entries.len(), collected.csv.display());
    if outcome.stopped {
        println!("stopped; run the same command again to resume");
        return Ok(130);
    }
    if !outcome.failed.is_empty() {
        eprintln!("failed: {} (logs in {}/logs); run the same command again to retry them", index_ranges(&outcome.failed), manifest.dir().display());
        return Ok(1);
    }
    Ok(0)
}

fn submit_cmd(manifest_path: &Path, options: &SlurmOptions, indices: Option<&str>, binary: Option<&Path>, dry_run: bool) -> Result<i32> {
    let manifest = Manifest::read(manifest_path)?;
    let indices: Vec<usize> = match indices {
        Some(text) => {
            let idx = parse_index_ranges(text)?;
            for &i in &idx {
                manifest.entry(i)?;
            }
            idx
        }
        None => manifest.entries.iter().filter(|e| manifest.run_state(e) != RunState::Finished).map(|e| e.index).collect(),
    };
    if indices.is_empty() {
        println!("every run of {} is finished; nothing to submit (`elmlab sweep collect {}` writes the table)", manifest.path.display(), manifest.dir().display());
        return Ok(0);
    }
    // Absolute paths: the jobs start in whatever directory Slurm gives them.
    let dir = std::path::absolute(manifest.dir())?;
    let exe = match binary {
        Some(path) if path.is_file() => std::path::absolute(path)?,
        Some(path) => bail!("--binary {}: no such file (build the CUDA one with scripts/build-cuda.sh)", path.display()),
        None => std::env::current_exe().context("locating the elmlab binary")?,
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sweep".into());
    let logs = dir.join("logs");
    let array = array_script(&name, &exe, &dir.join(MANIFEST), &logs, &index_ranges(&indices), options);
    let collect = collect_script(&name, &exe, &dir, &logs, options);
    let scripts = dir.join("slurm");
    std::fs::create_dir_all(&scripts)?;
    std::fs::create_dir_all(&logs)?;
    let (array_path, collect_path) = (scripts.join("array.sbatch"), scripts.join("collect.sbatch"));
    write_atomic(&array_path, array.as_bytes())?;
    write_atomic(&collect_path, collect.as_bytes())?;
    if dry_run {
        println!("# {}\n{array}\n# {}\n{collect}", array_path.display(), collect_path.display());
        println!("# not submitted (--dry-run); submit with: sbatch {} && sbatch --dependency=afterany:<jobid> {}", array_path.display(), collect_path.display());
        return Ok(0);
    }
    let array_job = sbatch(&array_path, &[])?;
    let collect_job = sbatch(&collect_path, &[format!("--dependency=afterany:{array_job}")])?;
    println!("submitted array job {array_job} ({} runs: {}) and collect job {collect_job}", indices.len(), index_ranges(&indices));
    println!("logs: {}   table when done: {}/results.csv", logs.display(), dir.display());
    Ok(0)
}

fn collect_cmd(registry: &Registry, dir: &Path) -> Result<i32> {
    let manifest = Manifest::read(dir)?;
    let c = collect(&manifest, registry)?;
    println!("{} rows, {} finished → {}", c.rows, c.finished, c.csv.display());
    for (i, why) in &c.failed {
        println!("run {i} failed: {}", why.lines().last().unwrap_or(""));
    }
    if !c.incomplete.is_empty() {
        let ranges = index_ranges(&c.incomplete);
        println!("not finished: {ranges}");
        println!("resubmit: elmlab sweep submit {} --slurm --indices {ranges}   (or: elmlab sweep run {})", manifest.path.display(), manifest.path.display());
    }
    Ok(0)
}
