//! A small tmpfs the tests mount to run the daemon out of space.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted for one test; unmounted when dropped, on failure
/// too. Declare it before the daemon that writes to it, so that the daemon
/// is stopped first.
pub struct Tmpfs {
    /// The mount point.
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `64k`); `None`, with a message saying
    /// why the test is skipped, where mounting is refused.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: mounting a {size} tmpfs was refused ({}); this test needs root \
                     and permission to mount",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}); this test needs mount(8) and root");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with a file of zeros until a write fails for want
    /// of space; returns that file.
    pub fn fill(&self) -> PathBuf {
        self.fill_as("filler")
    }

    /// Like [`Tmpfs::fill`], with a file of this name.
    pub fn fill_as(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let block = [0u8; 4096];
        loop {
            if let Err(e) = file.write_all(&block) {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                return path;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process holding a file there): detach it now; the
            // kernel frees it when the last file is closed.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}
