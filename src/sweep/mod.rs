//! Sweeps: a sweep file expands into a manifest of resolved runs, which runs locally
//! (`sweep run`), as a Slurm job array (`sweep submit`, one `run-index` per task), and
//! is collected into one table (`sweep collect`).

pub mod collect;
pub mod local;
pub mod manifest;
pub mod plan;
pub mod slurm;
pub mod spec;
