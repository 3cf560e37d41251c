//! A small tmpfs the test mounts for itself, to fill up: the database on a
//! full disk. Mounting needs root (or CAP_SYS_ADMIN); where it is refused
//! the test says so and is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted (lazily, so a daemon still holding files
/// cannot keep it) and removed on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on a new temp dir; `Err` says why
    /// not (the caller skips with it).
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new()
            .prefix("pinkpage-tmpfs-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    /// [`Tmpfs::mount`], or `None` after printing why `test` is skipped.
    pub fn mount_or_skip(size: &str, test: &str) -> Option<Tmpfs> {
        Tmpfs::mount(size)
            .map_err(|why| eprintln!("SKIPPED {test}: {why}"))
            .ok()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free block with one file, which it returns; removing
    /// the file frees the space again.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        let _ = file.flush();
        let free = free_bytes(self.path());
        assert_eq!(free, 0, "the file system is full");
        filler
    }
}

/// Free bytes of the file system at `path` (`df`), without a libc binding.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("run df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's free bytes")
}

impl Tmpfs {
    /// Remounts it read-only (refused by the kernel while a file on it is
    /// open for writing).
    pub fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
