//! One process per run: an exclusive `flock` on `runs/<id>.lock`, released when the
//! process ends however it ends (the kernel drops the lock with the descriptor).

use anyhow::{Context, Result};
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// `Ok(None)` when another process holds the run.
    pub fn try_acquire(path: &Path) -> Result<Option<RunLock>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = File::options().create(true).truncate(false).write(true).open(path).with_context(|| format!("opening lock file {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            Ok(Some(RunLock { _file: file }))
        } else {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(err).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}
