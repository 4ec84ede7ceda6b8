//! One host per state folder: an exclusive lock on `host.lock`.
//!
//! Two hosts on one journal would hand out the same sequence numbers and
//! reap each other's processes. The lock is an `flock` held for the life
//! of the host: the kernel drops it when the process dies, even by
//! `kill -9`, so a crash never leaves a stale lock behind. The file also
//! records the holder's pid, for the message a second host prints.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use anyhow::Context as _;
use nix::fcntl::{Flock, FlockArg};

/// Name of the lock file in the state folder.
pub const LOCK_FILE: &str = "host.lock";

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub struct StateLock {
    _file: Flock<File>,
}

impl StateLock {
    /// Takes the lock of `state_dir`, or says who holds it.
    ///
    /// # Errors
    ///
    /// When another host holds it (naming its pid), or the file cannot be
    /// opened.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<StateLock> {
        let path = state_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, _)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "another host is already running on state folder {}{}; stop it first, or pass a different --state-dir",
                    state_dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                );
            }
        };
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        StateLock::acquire(dir.path()).expect("free again once dropped");
    }
}
