//! The stores benchmark (issue 30): audit rows appended per second through
//! the store's trait (`AuditStore::append`: chained, one transaction a
//! batch) on SQLite and on PostgreSQL, side by side in one run, and on
//! PostgreSQL from three instances appending at once to the one chain.
//! `cargo bench --bench stores` runs [`Workload::FULL`]; the suite's smoke
//! run (`bench::stores_benchmark_*`) a tiny one.
//!
//! SQLite: a database file of its own (WAL, `synchronous = NORMAL`, as the
//! daemon opens it). PostgreSQL: a database of its own on the tests'
//! cluster (`scripts/test-env.sh`: loopback, `fsync = off`, so this
//! measures the store's round trips and locking, not a disk; a production
//! server's commits cost its disk's flush on top).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use pinkpage::records::NewAuditEvent;
use pinkpage::store::chain::KeyFile;
use pinkpage::store::postgres::PgStore;
use pinkpage::store::sqlite::SqliteStore;
use pinkpage::store::{Applied, AuditStore};

use super::stats::median;
use crate::support::postgres::{admin, admin_url};

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Rows appended in one round, per store and batch size.
    pub rows: usize,
    /// Rounds, each running every store at both batch sizes.
    pub rounds: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        rows: 5_000,
        rounds: 3,
    };
}

/// The batch sizes measured: one row (a quiet daemon, the command line)
/// and the journal's largest batch.
pub const BATCHES: [usize; 2] = [1, 256];

/// Rows per second of each round, per batch size ([`BATCHES`] order).
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    pub sqlite_rps: [Vec<f64>; 2],
    pub postgres_rps: [Vec<f64>; 2],
    /// Three PostgreSQL instances appending at once, all rows together.
    pub three_instances_rps: [Vec<f64>; 2],
}

fn row(n: usize) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(format!("conn-{}", n % 7), "ssh.command.end")
        .in_domain("stub")
        .by(Some("ops.example"), Some("10.1.2.3".into()));
    e.server = Some("web-1".into());
    e.command = Some(format!("systemctl status nginx --no-pager # {n}"));
    e.exit_status = Some(0);
    e.bytes = Some(4096);
    e
}

/// Appends `rows` in batches of `batch`, each batch awaited before the
/// next (as the journal writes one stream); rows per second.
async fn append_all(store: &dyn AuditStore, rows: &[NewAuditEvent], batch: usize) -> f64 {
    let t = Instant::now();
    for chunk in rows.chunks(batch) {
        let applied = store.append(chunk.to_vec()).await.expect("append");
        assert!(
            applied.iter().all(|a| matches!(a, Applied::Written(_))),
            "{applied:?}"
        );
    }
    rows.len() as f64 / t.elapsed().as_secs_f64()
}

/// A PostgreSQL database of the benchmark's own, dropped at the end.
struct Database(String);

impl Database {
    fn create() -> Database {
        let name = format!("pp_bench_{}", uuid::Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}"));
        Database(name)
    }

    fn url(&self) -> String {
        let base = admin_url();
        let slash = base.rfind('/').expect("a database in the URL");
        format!("{}/{}", &base[..slash], self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

/// Runs the benchmark (inside an actix system: the SQLite store's threads
/// are actix's).
pub fn run(w: Workload) -> Report {
    actix::System::new().block_on(measure(w))
}

async fn measure(w: Workload) -> Report {
    let rows: Vec<NewAuditEvent> = (0..w.rows).map(row).collect();
    let mut report = Report {
        workload: w,
        sqlite_rps: [Vec::new(), Vec::new()],
        postgres_rps: [Vec::new(), Vec::new()],
        three_instances_rps: [Vec::new(), Vec::new()],
    };
    for _ in 0..w.rounds {
        for (b, batch) in BATCHES.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let key = KeyFile::new(dir.path().join("audit.key"));
            let sqlite = SqliteStore::open(&dir.path().join("bench.db"), &key).unwrap();
            report.sqlite_rps[b].push(append_all(&*sqlite, &rows, batch).await);

            let db = Database::create();
            let pg = PgStore::open(&db.url(), &key).unwrap();
            report.postgres_rps[b].push(append_all(&*pg, &rows, batch).await);
            drop(pg);

            let db3 = Database::create();
            let instances: Vec<Arc<PgStore>> =
                (0..3).map(|_| PgStore::open(&db3.url(), &key).unwrap()).collect();
            let third = rows.len() / 3;
            let t = Instant::now();
            let mut writers = Vec::new();
            for (i, store) in instances.iter().enumerate() {
                let part = rows[i * third..(i + 1) * third].to_vec();
                let store = store.clone();
                writers.push(actix::spawn(
                    async move { append_all(&*store, &part, batch).await },
                ));
            }
            for w in writers {
                w.await.unwrap();
            }
            report.three_instances_rps[b].push((3 * third) as f64 / t.elapsed().as_secs_f64());
            drop(instances);
        }
    }
    report
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        writeln!(
            f,
            "## Audit appends by store ({} rows a store and batch size, median of {})\n",
            w.rows, w.rounds
        )?;
        writeln!(
            f,
            "| batch | SQLite, rows/s | PostgreSQL, rows/s | PostgreSQL, 3 instances at once, rows/s in all | PostgreSQL / SQLite |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for (b, batch) in BATCHES.into_iter().enumerate() {
            let (sqlite, pg, three) = (
                median(self.sqlite_rps[b].clone()),
                median(self.postgres_rps[b].clone()),
                median(self.three_instances_rps[b].clone()),
            );
            writeln!(
                f,
                "| {batch} row{} a transaction | {sqlite:.0} | {pg:.0} | {three:.0} | {:.2} |",
                if batch == 1 { "" } else { "s" },
                pg / sqlite
            )?;
        }
        Ok(())
    }
}
