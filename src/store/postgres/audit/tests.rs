//! The audit trail's contract, written once against `dyn AuditStore` and
//! run on SQLite and on PostgreSQL (what SQLite's `audit` and
//! `audit_chain` tests check, on both), then what only PostgreSQL has:
//! several instances appending to one chain at once, a value it cannot
//! store.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, Utc};
use deadpool_postgres::Client;

use super::insert_audit;
use crate::records::{audit::Outcome, AuditCut, AuditEvent, AuditQuery, NewAuditEvent};
use crate::store::chain::{Broken, ChainError, Head, KeyFile, Problem, Verified};
use crate::store::postgres::testing::{self, TestDatabase};
use crate::store::postgres::{audit_chain as pg_chain, pool_error, PgStore};
use crate::store::sqlite::{audit_chain as sqlite_chain, SqliteStore};
use crate::store::{Applied, AuditStore};

/// The database under one store, for what the trait does not do: verify,
/// read the head, run SQL.
enum Backend {
    Sqlite {
        path: PathBuf,
        key: KeyFile,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        db: TestDatabase,
    },
}

/// A store on a database of its own.
struct Subject {
    store: Arc<dyn AuditStore>,
    backend: Backend,
}

/// Runs `work` with a pooled connection of `store`, on its runtime.
async fn on_pg<T, F, Fut>(store: &PgStore, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    store
        .run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            Ok(work(client).await)
        })
        .await
        .unwrap()
}

impl Subject {
    /// On SQLite (inside an actix system).
    fn sqlite() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let key = KeyFile::new(dir.path().join("audit.key"));
        let store = SqliteStore::open(&path, &key).unwrap_or_else(|e| panic!("{e}"));
        Subject {
            store,
            backend: Backend::Sqlite { path, key, _dir: dir },
        }
    }

    /// On PostgreSQL (the tests' cluster).
    fn postgres() -> Subject {
        let (store, db) = testing::store();
        Subject {
            store: store.clone(),
            backend: Backend::Postgres { store, db },
        }
    }

    async fn append(&self, rows: Vec<NewAuditEvent>) -> Vec<i64> {
        self.store
            .append(rows)
            .await
            .unwrap()
            .into_iter()
            .map(|a| match a {
                Applied::Written(Some(id)) => id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    async fn cut(&self, before: chrono::DateTime<Utc>, limit: u32) -> Option<AuditCut> {
        self.store.cut(before, limit).await.unwrap()
    }

    /// Every row, oldest first.
    async fn all(&self) -> Vec<AuditEvent> {
        self.store.page_after(0, 10_000).await.unwrap()
    }

    async fn list(&self, query: AuditQuery) -> Vec<i64> {
        let query = AuditQuery {
            limit: if query.limit == 0 { 100 } else { query.limit },
            ..query
        };
        self.store
            .list(query)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    /// `pinkpage audit verify` with the store's key.
    async fn verified(&self, head: Option<Head>) -> Result<Verified, Broken> {
        let found = match &self.backend {
            Backend::Sqlite { path, key, .. } => {
                let mut conn = sqlite_chain::open_read_only(path).unwrap();
                sqlite_chain::verify(&mut conn, key, head).unwrap()
            }
            Backend::Postgres { store, db } => {
                let key = db.key_file.clone();
                on_pg(store, move |mut c| async move {
                    pg_chain::verify(&mut c, &key, head).await
                })
                .await
                .unwrap()
            }
        };
        assert!(found.key_matches);
        found.chain
    }

    /// `pinkpage audit head`.
    async fn head(&self) -> Head {
        match &self.backend {
            Backend::Sqlite { path, key, .. } => {
                let conn = sqlite_chain::open_read_only(path).unwrap();
                sqlite_chain::head(&conn, key).unwrap()
            }
            Backend::Postgres { store, db } => {
                let key = db.key_file.clone();
                on_pg(store, move |c| async move { pg_chain::head(&c, &key).await })
                    .await
                    .unwrap()
            }
        }
    }

    /// Runs `sql` as any client of the database would, the append-only
    /// guard in place.
    async fn sql(&self, sql: &'static str) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Backend::Postgres { store, .. } => {
                on_pg(store, move |c| async move {
                    c.batch_execute(sql)
                        .await
                        .map_err(|e| crate::store::postgres::describe(&e))
                })
                .await
            }
        }
    }

    /// Runs `sql` as an attacker with the database does: the guard off
    /// first (on PostgreSQL as the tests' superuser).
    async fn attack(&self, sql: &'static str) {
        let unguarded = match &self.backend {
            Backend::Sqlite { .. } => format!("DROP TRIGGER IF EXISTS audit_events_append_only; {sql}"),
            Backend::Postgres { .. } => {
                format!("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; {sql}")
            }
        };
        let unguarded: &'static str = Box::leak(unguarded.into_boxed_str());
        self.sql(unguarded).await.unwrap();
    }
}

fn event(action: &str) -> NewAuditEvent {
    let mut e = NewAuditEvent::new("test", action);
    e.user = Some("ops".into());
    e.command = Some(format!("echo {action}"));
    e
}

fn events(actions: &[&str]) -> Vec<NewAuditEvent> {
    actions.iter().map(|a| event(a)).collect()
}

fn old(action: &str) -> NewAuditEvent {
    let mut e = event(action);
    e.at = Utc::now() - Duration::days(30);
    e
}

#[test]
fn events_are_read_with_the_chains_columns_and_the_mac() {
    assert_eq!(
        super::EVENT_COLUMNS,
        format!("{}, mac", crate::store::postgres::audit_chain::CHAIN_COLUMNS)
    );
}

macro_rules! on_both {
    ($($contract:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[actix::test]
                async fn $contract() {
                    super::$contract(&super::Subject::sqlite()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[actix::test]
                async fn $contract() {
                    super::$contract(&super::Subject::postgres()).await;
                }
            )*
        }
    };
}

on_both!(
    appended_rows_get_the_next_ids_verify_and_the_head_is_the_newest_row,
    an_event_reads_back_as_written,
    list_applies_every_filter_in_the_store,
    a_row_cannot_be_updated_and_a_changed_row_breaks_the_chain,
    a_cut_takes_the_old_prefix_records_it_and_still_verifies,
    a_cut_with_a_limit_takes_the_old_prefix_in_pieces_and_each_verifies,
    a_row_put_back_below_a_cut_is_named,
    only_work_started_since_the_last_daemon_start_and_never_ended_is_interrupted,
);

async fn appended_rows_get_the_next_ids_verify_and_the_head_is_the_newest_row(s: &Subject) {
    assert_eq!(s.append(events(&["a", "b", "c"])).await, [1, 2, 3]);
    let ok = s.verified(None).await.unwrap();
    assert_eq!((ok.start.id, ok.rows, ok.head.id), (0, 3, 3));
    let head = s.head().await;
    assert_eq!(head, ok.head);
    // a batch is written in order, after what is there
    assert_eq!(s.append(events(&["d", "e"])).await, [4, 5]);
    let all = s.all().await;
    let actions: Vec<&str> = all.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["a", "b", "c", "d", "e"]);
    // the head kept before still holds
    let ok = s.verified(Some(head)).await.unwrap();
    assert!(ok.head_checked);
    assert_eq!(ok.head.id, 5);
    // a head from a longer chain: its newest rows were deleted
    let ahead = Head { id: 9, mac: head.mac };
    assert_eq!(
        s.verified(Some(ahead)).await.unwrap_err(),
        Broken {
            row: 9,
            problem: Problem::HeadMissing { last: 5 }
        }
    );
    // an empty batch writes nothing
    assert!(s.store.append(Vec::new()).await.unwrap().is_empty());
    assert_eq!(s.head().await.id, 5);
}

async fn an_event_reads_back_as_written(s: &Subject) {
    let mut full = NewAuditEvent::new("c7", "ssh.command.end")
        .by(Some("ops"), Some("192.0.2.7".into()))
        .in_domain("stub")
        .on("target-1");
    full.at = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07.089Z")
        .unwrap()
        .with_timezone(&Utc);
    full.server = Some("alpha".into());
    full.ended(Outcome::Failed, Some(20004));
    full.command = Some("uname -a".into());
    full.exit_status = Some(-1);
    full.bytes = Some(1 << 40);
    full.detail = Some(serde_json::json!({"signal": "TERM", "n": [1, 2]}));
    let mut bare = NewAuditEvent::new("system", "daemon.start");
    bare.outcome = None;
    bare.at = full.at;
    assert_eq!(s.append(vec![full.clone(), bare.clone()]).await, [1, 2]);

    let listed = s
        .store
        .list(AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let paged = s.store.page_after(0, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id).collect::<Vec<_>>(),
        [2, 1],
        "newest first"
    );
    assert_eq!(
        paged.iter().map(|e| e.id).collect::<Vec<_>>(),
        [1, 2],
        "oldest first"
    );
    for (read, written) in [(&paged[0], &full), (&paged[1], &bare)] {
        assert_eq!(
            serde_json::to_value(&read.event).unwrap(),
            serde_json::to_value(written).unwrap()
        );
        assert_eq!(read.instance, crate::records::instance());
        assert_eq!(read.mac.as_ref().map(String::len), Some(64));
    }
    assert_eq!(listed[1].mac, paged[0].mac);
    // the integers, texts and NULLs were linked as they are stored
    assert_eq!(s.verified(None).await.unwrap().rows, 2);
    assert_eq!(s.store.page_after(1, 10).await.unwrap().len(), 1);
    assert_eq!(s.store.page_after(0, 1).await.unwrap()[0].id, 1);
}

async fn list_applies_every_filter_in_the_store(s: &Subject) {
    let at = |day: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-05-{day:02}T12:00:00.000Z"))
            .unwrap()
            .with_timezone(&Utc)
    };
    let mut rows = Vec::new();
    for (i, (action, user, server, text)) in [
        ("ssh.command.start", Some("ops"), Some("alpha"), "Echo HELLO"),
        ("ssh.command.end", Some("ops"), Some("alpha"), "echo hello"),
        ("transfer.start", Some("dev"), Some("beta"), "Été report"),
        ("user.add", None, None, "plain"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = NewAuditEvent::new("a", action).by(user, None);
        e.server = server.map(str::to_owned);
        e.at = at(i as u32 + 1);
        match i {
            0 | 1 => e.command = Some(text.into()),
            2 => e.target = Some(text.into()),
            _ => e.detail = Some(serde_json::json!({ "note": text })),
        }
        rows.push(e);
    }
    assert_eq!(s.append(rows).await, [1, 2, 3, 4]);
    let q = AuditQuery::default;
    assert_eq!(s.list(q()).await, [4, 3, 2, 1]);
    assert_eq!(s.list(AuditQuery { limit: 2, ..q() }).await, [4, 3]);
    assert_eq!(
        s.list(AuditQuery {
            before_id: Some(3),
            ..q()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        s.list(AuditQuery {
            action: Some("ssh.command.end".into()),
            ..q()
        })
        .await,
        [2]
    );
    assert_eq!(
        s.list(AuditQuery {
            user: Some("ops".into()),
            ..q()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        s.list(AuditQuery {
            server: Some("beta".into()),
            ..q()
        })
        .await,
        [3]
    );
    assert_eq!(
        s.list(AuditQuery {
            domain: Some("rest".into()),
            ..q()
        })
        .await,
        [4]
    );
    assert_eq!(
        s.list(AuditQuery {
            domain: Some("stub".into()),
            ..q()
        })
        .await,
        [3, 2, 1]
    );
    assert_eq!(
        s.list(AuditQuery {
            since: Some(at(2)),
            until: Some(at(4)),
            ..q()
        })
        .await,
        [3, 2],
        "since is inclusive, until is not"
    );
    // text: command, target or detail, ASCII letters in any case
    let text = |t: &str| AuditQuery {
        text: Some(t.into()),
        ..q()
    };
    assert_eq!(s.list(text("hello")).await, [2, 1]);
    assert_eq!(s.list(text("eCHo h")).await, [2, 1]);
    assert_eq!(s.list(text("REPORT")).await, [3]);
    assert_eq!(s.list(text("Été")).await, [3]);
    assert_eq!(
        s.list(text("été")).await,
        Vec::<i64>::new(),
        "letters beyond ASCII are compared as they are"
    );
    assert_eq!(s.list(text("PLAIN")).await, [4], "in the detail");
    assert_eq!(s.list(text("nowhere")).await, Vec::<i64>::new());
    // filters together
    assert_eq!(
        s.list(AuditQuery {
            user: Some("ops".into()),
            text: Some("echo".into()),
            before_id: Some(2),
            ..q()
        })
        .await,
        [1]
    );
}

async fn a_row_cannot_be_updated_and_a_changed_row_breaks_the_chain(s: &Subject) {
    s.append(events(&["a", "b", "c"])).await;
    let err = s
        .sql("UPDATE audit_events SET command = 'x' WHERE id = 1")
        .await
        .unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    assert!(s.verified(None).await.is_ok());

    s.attack("UPDATE audit_events SET command = 'rm -rf /' WHERE id = 2")
        .await;
    assert_eq!(
        s.verified(None).await.unwrap_err(),
        Broken {
            row: 2,
            problem: Problem::Mac
        }
    );
}

async fn a_cut_takes_the_old_prefix_records_it_and_still_verifies(s: &Subject) {
    s.append((0..4).map(|i| old(&format!("old{i}"))).collect()).await;
    s.append(events(&["young1", "young2"])).await;
    let day_ago = Utc::now() - Duration::days(1);
    assert_eq!(
        s.cut(day_ago, u32::MAX).await,
        Some(AuditCut {
            through_id: 4,
            rows: 4,
            cut_id: 7
        })
    );
    let ok = s.verified(None).await.unwrap();
    assert_eq!((ok.start.id, ok.rows, ok.head.id), (4, 3, 7));
    let cut_row = s.all().await.pop().unwrap();
    assert_eq!(cut_row.event.action, "audit.cut");
    assert_eq!(cut_row.event.detail.as_ref().unwrap()["through_id"], 4);
    // nothing more is old enough
    assert_eq!(s.cut(day_ago, u32::MAX).await, None);
    // appending goes on after the cut row
    assert_eq!(s.append(events(&["later"])).await, [8]);
    assert!(s.verified(None).await.is_ok());

    // an attacker deletes more than the cut says
    s.attack("DELETE FROM audit_events WHERE id = 5").await;
    assert_eq!(
        s.verified(None).await.unwrap_err(),
        Broken {
            row: 5,
            problem: Problem::Missing { next: 6 }
        }
    );
}

async fn a_cut_with_a_limit_takes_the_old_prefix_in_pieces_and_each_verifies(s: &Subject) {
    s.append((0..5).map(|i| old(&format!("old{i}"))).collect()).await;
    s.append(events(&["young"])).await;
    let day_ago = Utc::now() - Duration::days(1);
    let mut pieces = Vec::new();
    while let Some(cut) = s.cut(day_ago, 2).await {
        pieces.push((cut.through_id, cut.rows));
        assert!(s.verified(None).await.is_ok(), "after {cut:?}");
    }
    assert_eq!(pieces, [(2, 2), (4, 2), (5, 1)]);
    let left: Vec<String> = s.all().await.into_iter().map(|e| e.event.action).collect();
    assert_eq!(left, ["young", "audit.cut", "audit.cut", "audit.cut"]);
}

async fn a_row_put_back_below_a_cut_is_named(s: &Subject) {
    s.append(events(&["a", "b", "c"])).await;
    let cut = s.cut(Utc::now() + Duration::days(1), u32::MAX).await.unwrap();
    assert_eq!((cut.through_id, cut.cut_id), (3, 4));
    // a row the cut took, put back from a backup
    s.attack(
        "INSERT INTO audit_events (id, at, actor, action, domain, instance) VALUES (2, '2026-01-01T00:00:00.000Z', 'x', 'b', 'system', 'local')",
    )
    .await;
    assert_eq!(
        s.verified(None).await.unwrap_err(),
        Broken {
            row: 2,
            problem: Problem::NotCut { cut: 4, through: 3 }
        }
    );
}

async fn only_work_started_since_the_last_daemon_start_and_never_ended_is_interrupted(s: &Subject) {
    let row = |actor: &str, action: &str| {
        let mut e = NewAuditEvent::new(actor, action);
        e.server = Some("alpha".into());
        e.user = Some("ops".into());
        e
    };
    let rows = vec![
        // an older daemon's life: its open start was dealt with back then
        row("a", "ssh.command.start"),
        row("system", "daemon.start"),
        // the last daemon's life
        row("a", "ssh.command.start"),
        row("a", "ssh.command.end"),
        row("a", "ssh.command.start"), // cut off
        row("b", "transfer.start"),
        row("b", "transfer.end"),
        row("c", "script.start"),  // cut off
        row("d", "script.end"),    // another actor's end closes nothing of c's
        row("e", "session.start"), // sessions are not work
    ];
    s.append(rows).await;
    assert_eq!(
        s.store
            .interrupt_left_work_and_start(crate::records::instance())
            .await
            .unwrap(),
        ["ssh.command.interrupted", "script.interrupted"]
    );
    let interrupted = s
        .store
        .list(AuditQuery {
            limit: 10,
            action: Some("script.interrupted".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let [cut_off] = interrupted.as_slice() else {
        panic!("{interrupted:?}")
    };
    let e = &cut_off.event;
    assert_eq!(
        (
            e.actor.as_str(),
            e.user.as_deref(),
            e.server.as_deref(),
            e.outcome
        ),
        ("c", Some("ops"), Some("alpha"), Some(Outcome::Interrupted))
    );
    let detail = e.detail.as_ref().unwrap();
    assert_eq!(detail["start_id"], 8);
    assert!(detail["started_at"].is_string(), "{detail}");
    let actions: Vec<String> = s
        .all()
        .await
        .into_iter()
        .skip(10)
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        ["ssh.command.interrupted", "script.interrupted", "daemon.start"]
    );
    assert!(s.verified(None).await.is_ok());

    // the next start-up (after this daemon's own start row, written in the
    // same step) finds nothing
    assert!(s
        .store
        .interrupt_left_work_and_start(crate::records::instance())
        .await
        .unwrap()
        .is_empty());
    let starts = s
        .list(AuditQuery {
            action: Some("daemon.start".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(starts.len(), 3);
    // an .interrupted row closes its start even where no daemon.start
    // follows it (a start-up that marked, then failed)
    let start = s.append(vec![row("f", "transfer.start")]).await[0];
    let mut marked = row("f", "transfer.interrupted");
    marked.detail = Some(serde_json::json!({ "start_id": start }));
    s.append(vec![marked]).await;
    assert!(
        s.store
            .interrupt_left_work_and_start(crate::records::instance())
            .await
            .unwrap()
            .is_empty(),
        "not marked twice"
    );
    // another instance's start-up touches none of this one's work
    s.append(vec![row("g", "script.start")]).await;
    assert!(s
        .store
        .interrupt_left_work_and_start("other")
        .await
        .unwrap()
        .is_empty());
    let marked = s
        .list(AuditQuery {
            action: Some("script.interrupted".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(marked.len(), 1, "only c's");
    assert!(s.verified(None).await.is_ok());
}

/// Several instances on one database (and the command line beside them)
/// append at once, with cuts among the appends: one chain, every id once,
/// no gap, no fork.
#[actix::test]
async fn appends_from_two_instances_at_once_keep_one_unbroken_chain() {
    let db = TestDatabase::new();
    let (a, b) = (db.open(), db.open());
    const TASKS: usize = 4;
    const BATCHES: usize = 25;
    const ROWS: usize = 3;
    let mut appends = Vec::new();
    for (n, store) in [&a, &b].into_iter().enumerate() {
        for task in 0..TASKS {
            let store = store.clone();
            appends.push(async move {
                let mut ids = Vec::new();
                for batch in 0..BATCHES {
                    let rows = (0..ROWS)
                        .map(|r| event(&format!("i{n}-t{task}-b{batch}-r{r}")))
                        .collect();
                    for applied in store.append(rows).await.unwrap() {
                        match applied {
                            Applied::Written(Some(id)) => ids.push(id),
                            other => panic!("{other:?}"),
                        }
                    }
                }
                ids
            });
        }
    }
    // the command line: one row inside a transaction of its own
    let cli = {
        let a = a.clone();
        async move {
            let mut ids = Vec::new();
            for n in 0..BATCHES {
                let chain = a.chain().clone();
                let id = on_pg(&a, move |mut c| async move {
                    let tx = c.transaction().await.unwrap();
                    let id = insert_audit(&tx, &chain, &event(&format!("cli-{n}")))
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    id
                })
                .await;
                ids.push(id);
            }
            ids
        }
    };
    // retention on the second instance, meanwhile
    let cuts = {
        let b = b.clone();
        async move {
            let mut cuts = Vec::new();
            for _ in 0..5 {
                if let Some(cut) = b.cut(Utc::now() + Duration::days(1), 7).await.unwrap() {
                    cuts.push(cut);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            cuts
        }
    };
    let (appended, cli, cuts) = futures_util::join!(futures_util::future::join_all(appends), cli, cuts);

    let mut ids: Vec<i64> = appended.into_iter().flatten().chain(cli).collect();
    ids.extend(cuts.iter().map(|c| c.cut_id));
    ids.sort_unstable();
    let total = (2 * TASKS * BATCHES * ROWS + BATCHES) as i64 + cuts.len() as i64;
    assert_eq!(
        ids,
        (1..=total).collect::<Vec<_>>(),
        "every id once, none skipped"
    );
    assert!(!cuts.is_empty());

    let key = db.key_file.clone();
    let found = on_pg(&a, move |mut c| async move {
        pg_chain::verify(&mut c, &key, None).await
    })
    .await
    .unwrap();
    assert!(found.key_matches);
    let ok = found.chain.unwrap_or_else(|broken| panic!("{broken}"));
    let last_cut = cuts.iter().map(|c| c.through_id).max().unwrap();
    assert_eq!((ok.start.id, ok.head.id), (last_cut, total));
    assert_eq!(ok.rows as i64, total - last_cut);
    let rows_cut: u64 = cuts.iter().map(|c| c.rows).sum();
    assert_eq!(
        rows_cut as i64, last_cut,
        "each cut took on where the last stopped"
    );
    drop((a, b));
}

/// A NUL, which PostgreSQL's text cannot hold (SQLite's can), does not
/// cost the trail its row: it is stored as U+FFFD, linked as stored, and
/// the chain verifies.
#[actix::test]
async fn a_command_with_a_nul_is_kept_with_a_replacement_character_and_verifies() {
    let s = Subject::postgres();
    let mut nul = event("typed");
    nul.command = Some("echo \0x".into());
    let applied = s.store.append(vec![event("a"), nul, event("b")]).await.unwrap();
    assert_eq!(
        applied,
        [1, 2, 3].map(|id| Applied::Written(Some(id))).to_vec(),
        "{applied:?}"
    );
    let rows = s.store.page_after(0, 10).await.unwrap();
    assert_eq!(rows[1].event.command.as_deref(), Some("echo \u{FFFD}x"));
    let ok = s.verified(None).await.unwrap();
    assert_eq!((ok.rows, ok.head.id), (3, 3));
}

/// `pinkpage audit head` and `verify` on PostgreSQL: a database without
/// the chain has none to read; a chain record whose check value was
/// changed still lets the rows be verified with the key, and says so.
#[actix::test]
async fn head_and_verify_name_a_missing_chain_and_a_changed_key_check() {
    let db = TestDatabase::new();
    let bare = TestDatabase::new();
    let store = db.open();
    let key = bare.key_file.clone();
    let url = bare.url.clone();
    // a connection to a database no instance opened
    let (no_head, no_verify) = on_pg(&store, move |_| async move {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(1)
            .build()
            .unwrap();
        let mut c = pool.get().await.unwrap();
        (
            pg_chain::head(&c, &key).await.map(|_| ()),
            pg_chain::verify(&mut c, &key, None).await.map(|_| ()),
        )
    })
    .await;
    assert!(matches!(no_head, Err(ChainError::NoChain)), "{no_head:?}");
    assert!(matches!(no_verify, Err(ChainError::NoChain)), "{no_verify:?}");

    store.append(events(&["a"])).await.unwrap();
    let key = db.key_file.clone();
    let found = on_pg(&store, move |mut c| async move {
        c.batch_execute(
            "ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_written_once;
             UPDATE audit_chain SET key_check = repeat('0', 64)",
        )
        .await
        .unwrap();
        let head = pg_chain::head(&c, &key).await;
        (head, pg_chain::verify(&mut c, &key, None).await.unwrap())
    })
    .await;
    assert!(
        matches!(found.0, Err(ChainError::WrongKey { .. })),
        "{:?}",
        found.0
    );
    assert!(!found.1.key_matches);
    assert_eq!(found.1.chain.unwrap().rows, 1);
}
