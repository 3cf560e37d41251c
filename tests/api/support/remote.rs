//! What runs on the "remote" servers: the harness sshd servers run on this
//! machine as the test user, so `pgrep -u <test user>` sees their processes.
//! Process death after a hang-up is asynchronous and has no event to await,
//! so these poll, bounded.

use std::time::Duration;

use super::sshd::TestUser;

/// How often and how long the waits below poll.
const POLL: Duration = Duration::from_millis(25);
const POLLS: usize = 400;

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

/// Waits (bounded) until no process of the test user matches `pattern`;
/// `false` if one still does after the wait.
pub async fn remote_process_gone(pattern: &str) -> bool {
    for _ in 0..POLLS {
        if !pgrep(pattern) {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// Waits (bounded) until a process matching `pattern` runs; panics if none
/// ever does.
pub async fn remote_process_started(pattern: &str) {
    for _ in 0..POLLS {
        if pgrep(pattern) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{pattern} never started");
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
