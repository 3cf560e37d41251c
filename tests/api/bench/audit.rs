//! The audit benchmark (issue 26): audit rows appended per second with the
//! chain against without it, in the same run. `cargo bench --bench audit`
//! runs [`Workload::FULL`]; the suite's smoke run
//! (`bench::audit_benchmark_compares_chained_and_plain_appends_on_a_tiny_workload`)
//! a tiny one.
//!
//! Both ways write the same rows to a database file of their own, opened
//! as the daemon opens its own (WAL, `synchronous = NORMAL`, schema and
//! chain brought up to date), in batches of one row (the command line, a
//! quiet daemon) and of 256 (the journal's largest):
//! - chained: the store's append (`store::sqlite::audit::append`): the
//!   write lock taken first, the last link read, each row numbered, its
//!   HMAC-SHA-256 made and stored with it;
//! - plain: what the append was before the chain, a deferred transaction
//!   inserting the same columns with the id left to SQLite and no MAC.

use std::fmt;
use std::time::Instant;

use pinkpage::records::NewAuditEvent;
use pinkpage::store::chain::KeyFile;
use pinkpage::store::sqlite::{audit, open_direct};

use super::stats::median;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Rows each way appends in one round, per batch size.
    pub rows: usize,
    /// Rounds, each running both ways at both batch sizes.
    pub rounds: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        rows: 20_000,
        rounds: 3,
    };
}

/// The batch sizes measured.
pub const BATCHES: [usize; 2] = [1, 256];

/// What one run measured: rows per second of each round, per batch size
/// (in [`BATCHES`] order).
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// The store's chained append.
    pub chained_rps: [Vec<f64>; 2],
    /// The plain insert.
    pub plain_rps: [Vec<f64>; 2],
}

/// A row like most rows: a command's end, with its text and a detail.
fn row(n: usize) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(format!("conn-{}", n % 7), "ssh.command.end")
        .in_domain("stub")
        .by(Some("ops.example"), Some("10.1.2.3".into()));
    e.server = Some("web-1".into());
    e.command = Some(format!("systemctl status nginx --no-pager # {n}"));
    e.exit_status = Some(0);
    e.bytes = Some(4096);
    e.detail = Some(serde_json::json!({"reason": "exit", "error": null, "cleanup_error": null}));
    e
}

/// Runs the benchmark in a scratch directory of its own.
pub fn run(w: Workload) -> Report {
    let rows: Vec<NewAuditEvent> = (0..w.rows).map(row).collect();
    let mut report = Report {
        workload: w,
        chained_rps: [Vec::new(), Vec::new()],
        plain_rps: [Vec::new(), Vec::new()],
    };
    for _ in 0..w.rounds {
        for (b, batch) in BATCHES.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let key = KeyFile::new(dir.path().join("audit.key"));

            let (mut conn, chain) = open_direct(&dir.path().join("chained.db"), &key).unwrap();
            let t = Instant::now();
            for chunk in rows.chunks(batch) {
                audit::append(&mut conn, &chain, chunk).unwrap();
            }
            report.chained_rps[b].push(w.rows as f64 / t.elapsed().as_secs_f64());
            let stored: i64 = conn
                .query_row(
                    "SELECT count(*) FROM audit_events WHERE mac IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored as usize, w.rows, "every chained row has its MAC");

            let (mut conn, _) = open_direct(&dir.path().join("plain.db"), &key).unwrap();
            let t = Instant::now();
            for chunk in rows.chunks(batch) {
                plain_append(&mut conn, chunk);
            }
            report.plain_rps[b].push(w.rows as f64 / t.elapsed().as_secs_f64());
        }
    }
    report
}

/// The append before the chain: the same columns, no id, no MAC.
fn plain_append(conn: &mut rusqlite::Connection, rows: &[NewAuditEvent]) {
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO audit_events (at, actor, action, server, command, exit_status, bytes, detail, user, remote_addr, instance, domain, target, outcome, code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .unwrap();
        for e in rows {
            stmt.execute(rusqlite::params![
                pinkpage::records::timestamp(e.at),
                e.actor,
                e.action,
                e.server,
                e.command,
                e.exit_status,
                e.bytes,
                e.detail.as_ref().map(|d| d.to_string()),
                e.user,
                e.remote_addr,
                pinkpage::records::DEFAULT_INSTANCE,
                e.domain,
                e.target,
                e.outcome.map(|o| o.as_str()),
                e.code,
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        writeln!(
            f,
            "## Audit rows ({} rows a way and batch size, median of {})\n",
            w.rows, w.rounds
        )?;
        writeln!(
            f,
            "| batch | plain insert, rows/s | chained (HMAC-SHA-256), rows/s | chained / plain |"
        )?;
        writeln!(f, "|---|---|---|---|")?;
        for (b, batch) in BATCHES.into_iter().enumerate() {
            let (plain, chained) = (
                median(self.plain_rps[b].clone()),
                median(self.chained_rps[b].clone()),
            );
            writeln!(
                f,
                "| {batch} row{} a transaction | {plain:.0} | {chained:.0} | {:.2} |",
                if batch == 1 { "" } else { "s" },
                chained / plain
            )?;
        }
        Ok(())
    }
}
