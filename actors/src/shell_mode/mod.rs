//! Shell mode (`command_mode = "shell"`): a command typed into the user's
//! interactive login shell on a PTY, as the seed did, instead of an SSH
//! `exec` request. For access gateways that allow only shell channels, and
//! for commands that need what the login profile sets up.
//!
//! # Layout
//! - [`lines`]: the one place that builds what is typed (the probe lines,
//!   the command lines).
//! - [`markers`]: the one place that reads the markers back
//!   ([`markers::MarkerFilter`]).
//! - [`type_command`]: the order in which the lines are typed.
//! - [`capture`]: a command whose output is a result (BMX4, `diff_command`).
//!   Terminals (STUB, workflow steps, scripts) run in `SshShellActor`.
//!
//! # The exchange
//! 1. The shell is granted; the two probe lines are typed at once (the tty
//!    keeps them until the profile has run).
//! 2. The shell prints the probe marker (POSIX shells only) and the ready
//!    marker. Without the probe marker the shell is not POSIX: refused
//!    with 22002, naming `$SHELL`.
//! 3. The command lines are typed: the command built in `_pp_c`, then one
//!    line that prints the begin marker, runs `(eval "$_pp_c")`, prints the
//!    end marker with `$?` and exits.
//! 4. Output between the begin and the end marker is the command's; the end
//!    marker's status is its exit status.
//!
//! Echo is left on: everything typed is echoed before the begin marker is
//! printed, and the command sees the terminal as it would in exec mode
//! (answers to its prompts echo). Turning it off with `stty` was measured
//! to lose the lines ksh93 had already read ahead.

pub mod capture;
pub mod lines;
pub mod markers;

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::{AppError, ErrorCode};

/// How long the login shell gets to print the ready marker: a slow login
/// profile or gateway, not a command. Past it the setup failed (22002).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Types the probe lines, waits for the reader to say the shell is POSIX
/// (`ready` completes), then types `command_lines`. `write` sends text to
/// the shell and waits while its window is full; the reader must run
/// concurrently, since the shell echoes what is typed.
///
/// `ready` dropped without a value means the reader saw no POSIX shell or
/// the channel ended: nothing more is typed and the reader reports why.
/// No ready marker within [`SETUP_TIMEOUT`] is 22002.
pub async fn type_command<W, Fut>(
    server: &str,
    probe_lines: String,
    command_lines: String,
    ready: oneshot::Receiver<()>,
    mut write: W,
) -> Result<(), AppError>
where
    W: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), AppError>>,
{
    write(probe_lines.into_bytes()).await?;
    match tokio::time::timeout(SETUP_TIMEOUT, ready).await {
        Ok(Ok(())) => write(command_lines.into_bytes()).await,
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(no_answer(server)),
    }
}

/// 22002: the login shell is not a POSIX shell.
pub fn not_posix(server: &str, shell: &str) -> AppError {
    let shell = if shell.is_empty() {
        "(unnamed: $SHELL is empty)"
    } else {
        shell
    };
    AppError::with_detail(
        ErrorCode::ShellModeUnusable,
        format!(
            "server '{server}': command_mode = \"shell\" needs a POSIX login shell (sh, bash, dash, \
             ksh, zsh), and the login shell {shell} is not one: it could not evaluate $((1+1)); \
             give the user a POSIX shell or set command_mode = \"exec\""
        ),
    )
}

/// 22002: the shell never printed the ready marker.
pub fn no_answer(server: &str) -> AppError {
    AppError::with_detail(
        ErrorCode::ShellModeUnusable,
        format!(
            "server '{server}': the login shell did not answer the setup lines within \
             {SETUP_TIMEOUT:?} (a login profile or gateway menu that reads the terminal, or a \
             shell that is not one)"
        ),
    )
}

/// 22000: the shell went before the command started.
pub fn ended_before_start(server: &str, shell_status: Option<u32>) -> AppError {
    let how = match shell_status {
        Some(status) => format!("with status {status}"),
        None => "without a status".to_owned(),
    };
    AppError::with_detail(
        ErrorCode::SshCommandFailed,
        format!("server '{server}': the login shell ended {how} before the command started"),
    )
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    type Typed = Rc<RefCell<Vec<String>>>;

    fn recorder() -> (
        Typed,
        impl FnMut(Vec<u8>) -> std::future::Ready<Result<(), AppError>>,
    ) {
        let typed: Typed = Rc::default();
        let t = typed.clone();
        let write = move |bytes: Vec<u8>| {
            t.borrow_mut().push(String::from_utf8(bytes).unwrap());
            std::future::ready(Ok(()))
        };
        (typed, write)
    }

    #[tokio::test(start_paused = true)]
    async fn the_command_is_typed_only_after_the_shell_said_it_is_posix() {
        let (typed, write) = recorder();
        let (tx, rx) = oneshot::channel();
        let typing = type_command("s", "probe".into(), "command".into(), rx, write);
        let answer = async {
            tokio::time::sleep(Duration::from_secs(29)).await;
            assert_eq!(*typed.borrow(), ["probe"], "typed before the answer");
            tx.send(()).unwrap();
        };
        let (result, ()) = tokio::join!(typing, answer);
        result.unwrap();
        assert_eq!(*typed.borrow(), ["probe", "command"]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_within_the_setup_timeout_is_22002() {
        let (typed, write) = recorder();
        let (_tx, rx) = oneshot::channel::<()>();
        let started = tokio::time::Instant::now();
        let err = type_command("web1", "probe".into(), "command".into(), rx, write)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ShellModeUnusable);
        assert!(err.detail.unwrap().contains("web1"));
        assert_eq!(started.elapsed(), SETUP_TIMEOUT);
        assert_eq!(*typed.borrow(), ["probe"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_shell_gets_nothing_more_typed() {
        let (typed, write) = recorder();
        let (tx, rx) = oneshot::channel::<()>();
        drop(tx);
        type_command("s", "probe".into(), "command".into(), rx, write)
            .await
            .unwrap();
        assert_eq!(*typed.borrow(), ["probe"]);
    }

    #[test]
    fn the_refusal_names_the_shell_and_what_to_do() {
        let e = not_posix("mdwap1p", "/usr/bin/tcsh");
        assert_eq!(e.code.code(), 22002);
        let d = e.detail.unwrap();
        assert!(
            d.contains("/usr/bin/tcsh") && d.contains("POSIX") && d.contains("mdwap1p"),
            "{d}"
        );
    }
}
