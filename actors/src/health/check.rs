//! One health check, and a sweep that runs many of them at once.
//!
//! A check is healthy when the server's SSH port accepts a TCP connection
//! and sends an SSH 2 identification line (`SSH-2.0-...`, or `SSH-1.99-...`
//! from servers that also speak 1.x) before the check's deadline. A port
//! that accepts but stays silent, or speaks something else, is not SSH and
//! so not healthy. No key exchange is attempted: the banner is enough to
//! tell "sshd is answering" and costs the server nothing but a log line.
//!
//! [`sweep`] runs the checks of every server concurrently, at most
//! `max_in_flight` at a time, and yields each result as soon as it is known,
//! so a server that swallows packets never delays another's result. Every
//! check is bounded by its own deadline, even one whose probe hangs or
//! panics.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, Stream, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::health::CheckOutcome;

/// How much a server may send before its identification line. RFC 4253
/// allows other lines first; a real sshd sends none, so 8 KiB is generous.
const MAX_PRE_BANNER_BYTES: u64 = 8 * 1024;

/// What a check needs to know about a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Configured server name.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
}

/// A check's time budget: the instant it must be done by, and how long that
/// was (for messages). The sweep enforces the same deadline from outside,
/// so a probe that ignores it still cannot run late.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// When the check must have finished.
    pub deadline: Instant,
    /// The configured timeout the deadline came from.
    pub timeout: Duration,
}

/// How a server is checked. The monitor uses [`ssh_banner_probe`]; tests
/// substitute probes that hang, panic or answer on cue.
pub type Probe = Arc<dyn Fn(Target, Budget) -> BoxFuture<'static, CheckOutcome> + Send + Sync>;

/// The real check: TCP connect, then read the SSH identification line.
pub fn ssh_banner_probe() -> Probe {
    Arc::new(|target: Target, budget: Budget| {
        async move {
            let started = Instant::now();
            let outcome = check_ssh_banner(&target.host, target.port, budget).await;
            crate::metrics::health_check(matches!(outcome, CheckOutcome::Up { .. }), started.elapsed());
            outcome
        }
        .boxed()
    })
}

/// Connects to `host:port` and reads its SSH identification line, all
/// before `budget.deadline`.
pub async fn check_ssh_banner(host: &str, port: u16, budget: Budget) -> CheckOutcome {
    let started = Instant::now();
    let down = |error: String| CheckOutcome::Down { error };
    let stream = match timeout_at(budget.deadline, TcpStream::connect((host, port))).await {
        Err(_) => {
            return down(format!(
                "tcp connect to {host}:{port} timed out after {:?}",
                budget.timeout
            ))
        }
        Ok(Err(e)) => return down(format!("tcp connect to {host}:{port} failed: {e}")),
        Ok(Ok(stream)) => stream,
    };
    match timeout_at(budget.deadline, read_banner(stream)).await {
        Err(_) => down(format!(
            "no ssh banner within {:?}: the port accepts connections but does not speak ssh",
            budget.timeout
        )),
        Ok(Err(error)) => down(error),
        Ok(Ok(())) => CheckOutcome::Up {
            latency: started.elapsed(),
        },
    }
}

/// Reads lines until the identification line, and judges it.
async fn read_banner(stream: TcpStream) -> Result<(), String> {
    let mut reader = BufReader::new(stream.take(MAX_PRE_BANNER_BYTES));
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading the ssh banner failed: {e}"))?;
        if n == 0 {
            return Err(if reader.get_ref().limit() == 0 {
                format!("no ssh banner in the first {MAX_PRE_BANNER_BYTES} bytes")
            } else {
                "connection closed before the ssh banner".to_owned()
            });
        }
        if !line.starts_with(b"SSH-") {
            continue; // a pre-banner line (RFC 4253 section 4.2)
        }
        return if line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-") {
            Ok(())
        } else {
            let shown: String = String::from_utf8_lossy(&line)
                .trim_end()
                .chars()
                .take(64)
                .collect();
            Err(format!("not an ssh 2 banner: {shown:?}"))
        };
    }
}

/// Checks every target, at most `max_in_flight` at once, each within
/// `timeout` from when it starts; yields `(target, outcome)` as results
/// come in, fastest first.
///
/// With no more targets than `max_in_flight`, the whole sweep takes at most
/// one `timeout`. The bound keeps a large fleet from opening thousands of
/// sockets at once; beyond it, checks start as earlier ones finish.
pub fn sweep(
    targets: Vec<Target>,
    probe: Probe,
    timeout: Duration,
    max_in_flight: usize,
) -> impl Stream<Item = (Target, CheckOutcome)> + 'static {
    stream::iter(targets)
        .map(move |target| {
            let probe = probe.clone();
            async move {
                let budget = Budget {
                    deadline: Instant::now() + timeout,
                    timeout,
                };
                // A panicking probe is one failed check, not a dead monitor.
                let check = AssertUnwindSafe(probe(target.clone(), budget)).catch_unwind();
                let outcome = match timeout_at(budget.deadline, check).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => CheckOutcome::Down {
                        error: "the health check panicked".to_owned(),
                    },
                    Err(_) => CheckOutcome::Down {
                        error: format!("no ssh banner within {timeout:?}"),
                    },
                };
                (target, outcome)
            }
        })
        .buffer_unordered(max_in_flight.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn target(i: usize) -> Target {
        Target {
            name: format!("s{i:03}"),
            host: "127.0.0.1".into(),
            port: 1,
        }
    }

    fn hanging() -> Probe {
        Arc::new(|_, _| futures_util::future::pending().boxed())
    }

    fn is_down(o: &CheckOutcome) -> bool {
        matches!(o, CheckOutcome::Down { .. })
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_of_hanging_checks_takes_one_timeout_not_their_sum() {
        let t0 = Instant::now();
        let targets: Vec<_> = (0..64).map(target).collect();
        let results: Vec<_> = sweep(targets, hanging(), Duration::from_secs(5), 64)
            .collect()
            .await;
        assert_eq!(results.len(), 64);
        assert!(results.iter().all(|(_, o)| is_down(o)));
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_result_is_not_delayed_by_a_hanging_check() {
        let probe: Probe = Arc::new(|t: Target, _| {
            async move {
                if t.name == "s000" {
                    futures_util::future::pending::<()>().await;
                }
                CheckOutcome::Up {
                    latency: Duration::ZERO,
                }
            }
            .boxed()
        });
        let t0 = Instant::now();
        let mut results = Box::pin(sweep(
            vec![target(0), target(1)],
            probe,
            Duration::from_secs(5),
            64,
        ));
        let (first, outcome) = results.next().await.unwrap();
        assert_eq!((first.name.as_str(), t0.elapsed()), ("s001", Duration::ZERO));
        assert!(!is_down(&outcome));
        let (second, outcome) = results.next().await.unwrap();
        assert_eq!(second.name, "s000");
        assert!(is_down(&outcome));
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_max_in_flight_checks_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let probe: Probe = {
            let (running, peak) = (running.clone(), peak.clone());
            Arc::new(move |_, _| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    CheckOutcome::Up {
                        latency: Duration::from_secs(1),
                    }
                }
                .boxed()
            })
        };
        let t0 = Instant::now();
        let results: Vec<_> = sweep((0..200).map(target).collect(), probe, Duration::from_secs(5), 64)
            .collect()
            .await;
        assert_eq!(results.len(), 200);
        assert_eq!(peak.load(Ordering::SeqCst), 64);
        // 200 checks of 1 s through 64 slots: four waves.
        assert_eq!(t0.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_probe_is_one_failed_check() {
        let probe: Probe = Arc::new(|t: Target, _| {
            async move {
                assert_ne!(t.name, "s000", "probe bug");
                CheckOutcome::Up {
                    latency: Duration::ZERO,
                }
            }
            .boxed()
        });
        let mut results: Vec<_> = sweep(vec![target(0), target(1)], probe, Duration::from_secs(5), 64)
            .collect()
            .await;
        results.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        assert!(matches!(&results[0].1, CheckOutcome::Down { error } if error.contains("panicked")));
        assert!(!is_down(&results[1].1));
    }

    /// A listener that answers each connection with `greeting` (or nothing
    /// at all, keeping the connection open, when it is `None`).
    async fn listener(greeting: Option<&'static [u8]>) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                if let Some(g) = greeting {
                    let _ = conn.write_all(g).await;
                }
                held.push(conn);
            }
        });
        (port, task)
    }

    async fn check(port: u16, timeout_ms: u64) -> CheckOutcome {
        let timeout = Duration::from_millis(timeout_ms);
        let budget = Budget {
            deadline: Instant::now() + timeout,
            timeout,
        };
        check_ssh_banner("127.0.0.1", port, budget).await
    }

    fn error_of(o: CheckOutcome) -> String {
        match o {
            CheckOutcome::Down { error } => error,
            up => panic!("expected a failure, got {up:?}"),
        }
    }

    #[tokio::test]
    async fn an_ssh_2_banner_is_healthy() {
        for greeting in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"SSH-1.99-Legacy\r\n",
            b"please wait\r\nSSH-2.0-after-a-pre-banner-line\r\n",
        ] {
            let (port, _task) = listener(Some(greeting)).await;
            assert!(!is_down(&check(port, 5000).await), "{greeting:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_port_is_unhealthy_because_no_banner_came() {
        let (port, _task) = listener(None).await;
        let error = error_of(check(port, 200).await);
        assert!(error.contains("no ssh banner within 200ms"), "{error}");
    }

    #[tokio::test]
    async fn a_port_speaking_something_else_is_unhealthy() {
        let (port, _task) = listener(Some(b"SSH-1.5-old\r\n")).await;
        let error = error_of(check(port, 5000).await);
        assert!(error.starts_with("not an ssh 2 banner"), "{error}");

        let (port, _task) = listener(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
        // The listener keeps the connection open, so the check waits for a
        // banner line that never comes.
        let error = error_of(check(port, 200).await);
        assert!(error.contains("no ssh banner"), "{error}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unhealthy_with_the_connect_error() {
        // A socket bound but never listening keeps the port ours for the
        // whole test, so connects to it are refused. (Dropping a listener
        // and reusing its port raced with parallel tests that bound the
        // same free port in between: the check then found a live peer.)
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = reserved.local_addr().unwrap().port();
        let error = error_of(check(port, 5000).await);
        drop(reserved);
        assert!(
            error.starts_with(&format!("tcp connect to 127.0.0.1:{port} failed")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_banner_is_unhealthy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        });
        let error = error_of(check(port, 5000).await);
        assert!(
            error.contains("closed before the ssh banner") || error.contains("reading the ssh banner failed"),
            "{error}"
        );
    }
}
