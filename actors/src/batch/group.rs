//! Commands without a PTY that leave nothing behind: [`own_group`] wraps a
//! command line so that, on the server, it runs in its own process group,
//! and that group is signalled as a whole.
//!
//! Why: sshd sends no SIGHUP to a command without a PTY, and a signal
//! request reaches only the process sshd started. So `sleep 100 & sleep
//! 200; wait` cancelled with TERM loses its shell and keeps both sleeps,
//! and a daemon that dies (or a channel that closes) leaves the whole
//! command running. The wrapper, a small POSIX `sh` script, fixes both:
//!
//! - it starts the command with `setsid` in the user's login shell
//!   (`$SHELL -c`, as sshd would have), so the command and everything it
//!   starts share one new process group;
//! - TERM, INT or HUP sent to the wrapper (what `SshSession::exec` sends on
//!   timeout and cancel) is forwarded to the whole group; once the command
//!   ended the wrapper ends itself with the same signal, so the exit is
//!   still reported as that signal. (OpenSSH itself signals the process
//!   group of the process it started, which covers a compound command on
//!   its own; servers that signal one process do not, and neither covers a
//!   channel that closes or a daemon that dies: hence the watcher;)
//! - a watcher reads the channel's stdin, which the daemon never writes
//!   nor closes: end of file there means the channel closed (the daemon
//!   closed it, gave up on it after KILL, or died), and the watcher kills
//!   the group with KILL;
//! - the command's own stdin is `/dev/null` (it used to be the channel,
//!   which never delivers data nor end of file: a command reading stdin
//!   hung until its timeout).
//!
//! Without `setsid` on the server (it is in util-linux, on every Linux
//! distribution) the command runs in the wrapper's group and the signals
//! reach its first process only, as before.

use crate::files::shell_quote::quote;

/// The wrapper; `$1` is the command. Written for `/bin/sh` (dash, bash,
/// busybox): `kill -s SIG -- -PGID` is POSIX. fd 3 keeps the channel's
/// stdin for the watcher: an asynchronous list's stdin is `/dev/null` in a
/// shell without job control. The watcher writes to `/dev/null` so it never
/// holds the channel's output open after the command ended, and runs in a
/// session of its own: OpenSSH delivers a signal request to the whole
/// process group of the process it started (`killpg`), and its KILL must
/// not take the watcher with the wrapper.
const WRAPPER: &str = r#"exec 3<&0
if command -v setsid >/dev/null 2>&1; then
  setsid "${SHELL:-/bin/sh}" -c "$1" </dev/null 3<&- &
else
  "${SHELL:-/bin/sh}" -c "$1" </dev/null 3<&- &
fi
p=$!
g=
for s in TERM INT HUP; do trap "g=$s; kill -s $s -- -$p $p 2>/dev/null" $s; done
if command -v setsid >/dev/null 2>&1; then
  setsid /bin/sh -c "cat; kill -s KILL -- -$p $p" <&3 >/dev/null 2>&1 &
else
  /bin/sh -c "cat; kill -s KILL -- -$p $p" <&3 >/dev/null 2>&1 &
fi
w=$!
exec 3<&-
while :; do
  wait $p
  r=$?
  kill -0 $p 2>/dev/null || break
done
kill -0 -- -$p 2>/dev/null || kill $w 2>/dev/null
if [ -n "$g" ]; then trap - $g; kill -s $g $$; fi
exit $r"#;

/// The command line (for the login shell, as sshd runs it) that runs
/// `command` in its own process group, killed when the channel closes.
/// See the module docs.
pub fn own_group(command: &str) -> String {
    format!(
        "exec /bin/sh -c {} pinkpage-group {}",
        quote(WRAPPER),
        quote(command)
    )
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::testing::eventually;

    /// Runs the wrapped `command` here as sshd would: the login shell with
    /// `-c`, stdin a pipe the test holds (the channel).
    fn spawn(command: &str) -> Child {
        use std::os::unix::process::CommandExt;
        Command::new("/bin/sh")
            // a group of its own, as sshd gives the process it starts
            .process_group(0)
            .arg("-c")
            .arg(own_group(command))
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh")
    }

    /// Whether a process has `pattern` in its command line.
    fn running(pattern: &str) -> bool {
        Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .expect("pgrep")
            .status
            .success()
    }

    fn signal(child: &Child, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -s {sig}");
    }

    #[test]
    fn output_and_exit_status_pass_through_and_quotes_survive() {
        let mut child = spawn("printf '%s\\n' \"it's\"; echo \"$0\" >/dev/null; exit 7");
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(out, "it's\n");
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn the_command_reads_end_of_file_not_the_channel() {
        let mut child = spawn("cat; echo done");
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "done\n");
        assert!(child.wait().unwrap().success());
    }

    // Processes have no event to await: these poll (real time; the
    // blocking calls are short, and nothing else runs on the test's runtime).
    #[tokio::test]
    async fn term_to_the_wrapper_ends_every_process_of_a_compound_command() {
        let (a, b) = ("sleep 1000.41", "sleep 2000.41");
        let mut child = spawn(&format!("{a} & {b}; wait"));
        eventually("both sleeps run", async || running(a) && running(b)).await;
        signal(&child, "TERM");
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15), "reported as ended by TERM: {status:?}");
        eventually("both sleeps are gone", async || !running(a) && !running(b)).await;
    }

    #[tokio::test]
    async fn a_closed_channel_kills_the_group_even_when_it_ignores_term() {
        let (a, b) = ("sleep 1000.42", "sleep 2000.42");
        let mut child = spawn(&format!("trap '' TERM; {a} & {b}; wait"));
        eventually("both sleeps run", async || running(a) && running(b)).await;
        // held apart: `Child::wait` would close it
        let channel = child.stdin.take();
        // what happens when TERM is not enough: OpenSSH sends KILL to the
        // wrapper's whole process group (the spawned shell leads it), then
        // the daemon closes the channel
        let group = format!("-{}", child.id());
        let killed = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap();
        assert!(running(a) && running(b), "KILL of the wrapper alone ended them");
        drop(channel);
        eventually("both sleeps are gone", async || !running(a) && !running(b)).await;
    }
}
