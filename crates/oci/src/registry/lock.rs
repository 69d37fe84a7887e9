//! The storage lock: `<root>/lock`, held with `flock(2)` by a server for its lifetime and by a
//! garbage collection while it runs. The kernel releases it when the process dies, so a
//! killed server never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use super::error::RegistryError;

/// A held lock; released on drop.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Take the lock of the registry at `root` (creating `root`), or fail at once with
/// [`RegistryError::Locked`].
pub(crate) fn acquire(root: &Path) -> Result<Lock, RegistryError> {
    std::fs::create_dir_all(root).map_err(RegistryError::io(root))?;
    let path = root.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(RegistryError::io(&path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(RegistryError::Locked {
                root: root.to_path_buf(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(RegistryError::io(&path)(e.into())),
    }
    // Record who holds it, for the message others get.
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(RegistryError::io(&path))?;
    Ok(Lock { _file: file })
}
