//! What runs on the "remote" servers: the harness sshd servers run on this
//! machine as the test user, so `pgrep -u <test user>` sees their processes.
//! Process start and death have no event to await, so these poll, bounded
//! ([`eventually`]).
//!
//! "It is gone" proves nothing about a process that never ran, so the only
//! way to check an end is through a [`RemoteProcess`], which exists only
//! once the process was seen running.

use std::time::Duration;

use super::poll::eventually;
use super::sshd::TestUser;

/// Whether a process of the test user has `pattern` in its command line.
pub fn pgrep(pattern: &str) -> bool {
    let user = TestUser::get();
    std::process::Command::new("pgrep")
        .args(["-u", &user.name, "-f", pattern])
        .output()
        .expect("pgrep")
        .status
        .success()
}

/// A process of the test user that was seen running.
#[must_use = "a process seen running is there to check that it ends"]
pub struct RemoteProcess {
    pattern: String,
}

impl RemoteProcess {
    /// Waits (bounded) until a process matching `pattern` runs; fails the
    /// test if none ever does.
    pub async fn started(pattern: &str) -> RemoteProcess {
        eventually(&format!("a process matching `{pattern}` starts"), async || {
            pgrep(pattern)
        })
        .await;
        RemoteProcess {
            pattern: pattern.to_owned(),
        }
    }

    /// Waits (bounded) until the process is gone; fails the test with
    /// `why` if it still runs.
    pub async fn ended(self, why: &str) {
        let pattern = self.pattern.as_str();
        eventually(&format!("`{pattern}` ends ({why})"), async || !pgrep(pattern)).await;
    }
}

/// Checks that no process matches `pattern` now and none appears for
/// `settle`: for races where the process may never have started and
/// must not start late.
pub async fn no_remote_process_for(pattern: &str, settle: Duration) {
    let until = tokio::time::Instant::now() + settle;
    eventually(&format!("no process matches `{pattern}`"), async || {
        !pgrep(pattern)
    })
    .await;
    while tokio::time::Instant::now() < until {
        assert!(!pgrep(pattern), "`{pattern}` started late");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Gives `path` to the test user, so the harness servers (which run as
/// that user) may read and write it.
pub fn chown_to_test_user(path: &std::path::Path) {
    let user = TestUser::get();
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .arg(flag)
            .arg(&user.name)
            .output()
            .expect("id");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .expect("numeric id")
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).expect("chown");
}
