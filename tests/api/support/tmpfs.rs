//! A small tmpfs the test mounts for itself, to fill up: the database on a
//! full disk. Mounting needs root (or CAP_SYS_ADMIN); `scripts/test-env.sh`
//! makes sure `mount` is there and says when the machine refuses it.
//!
//! A test that cannot mount is skipped only where it could never run (a
//! developer's unprivileged `cargo test`), and says so on the terminal
//! whatever the harness captures. As root, or in CI (`CI` set), it fails
//! instead: a skipped test there would pass while testing nothing.

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

    /// [`Tmpfs::mount`], or `None` after printing why `test` is skipped;
    /// fails the test instead when it must run (as root, or in CI).
    pub fn mount_or_skip(size: &str, test: &str) -> Option<Tmpfs> {
        let why = match Tmpfs::mount(size) {
            Ok(fs) => return Some(fs),
            Err(why) => why,
        };
        if let Some(must) = must_run() {
            panic!("{test} cannot mount its tmpfs ({why}), and {must}: it must run, not skip");
        }
        // Straight to the terminal: libtest captures `eprintln!` of a
        // passing test, which would hide that nothing was tested.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED {test}: {why} (it runs as root; see scripts/test-env.sh)"
        );
        None
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

/// Why a test may not be skipped here, if it may not: running as root
/// (which may mount) or in CI (`CI` set, as CI services do).
fn must_run() -> Option<&'static str> {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        return Some("CI is set");
    }
    // the effective uid, the second field of `Uid:` (no libc binding here)
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    (euid == Some("0")).then_some("this runs as root")
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

#[test]
fn a_tmpfs_that_cannot_be_mounted_fails_where_the_test_must_run_and_skips_elsewhere() {
    // a size the kernel refuses: the mount fails, as where it is not allowed
    let attempt = std::panic::catch_unwind(|| Tmpfs::mount_or_skip("no-such-size", "the probe").is_some());
    match must_run() {
        Some(why) => {
            let panic = attempt.expect_err("a test that must run failed instead of skipping");
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("must run, not skip"), "{message}");
            assert!(message.contains(why), "{message}");
        }
        None => assert!(!attempt.expect("skipped, not failed")),
    }
}
