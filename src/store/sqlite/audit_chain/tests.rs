use std::path::{Path, PathBuf};

use super::*;
use crate::store::sqlite::{audit, migrations, open_direct};

/// A database file and its key file in a scratch directory.
struct Scratch {
    _dir: tempfile::TempDir,
    db: PathBuf,
    key: KeyFile,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    Scratch {
        db: dir.path().join("audit.db"),
        key: KeyFile::new(dir.path().join("data/audit.key")),
        _dir: dir,
    }
}

fn event(action: &str) -> NewAuditEvent {
    let mut e = NewAuditEvent::new("test", action);
    e.user = Some("ops".into());
    e.command = Some(format!("echo {action}"));
    e
}

fn append(conn: &mut Connection, chain: &Chain, actions: &[&str]) -> Vec<i64> {
    let rows: Vec<NewAuditEvent> = actions.iter().map(|a| event(a)).collect();
    audit::append(conn, chain, &rows)
        .unwrap()
        .into_iter()
        .map(|a| match a {
            crate::store::Applied::Written(Some(id)) => id,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn verified(db: &Path, key: &KeyFile, head: Option<Head>) -> Result<Verified, Broken> {
    let mut conn = open_read_only(db).unwrap();
    let found = verify(&mut conn, key, head).unwrap();
    assert!(found.key_matches);
    found.chain
}

/// What an attacker with the file and `sqlite3` does: drops the guard
/// first.
fn attacker(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_events_append_only")
        .unwrap();
    conn
}

#[test]
fn rows_appended_by_the_store_verify_and_their_head_is_the_newest_row() {
    let s = scratch();
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    let ids = append(&mut conn, &chain, &["a", "b", "c"]);
    assert_eq!(ids, [1, 2, 3]);
    let ok = verified(&s.db, &s.key, None).unwrap();
    assert_eq!((ok.rows, ok.head.id), (3, 3));
    let ro = open_read_only(&s.db).unwrap();
    assert_eq!(head(&ro, &s.key).unwrap(), ok.head);
}

#[test]
fn an_update_of_an_audit_row_is_refused_by_the_trigger() {
    let s = scratch();
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    append(&mut conn, &chain, &["a"]);
    let err = conn
        .execute("UPDATE audit_events SET command = 'x' WHERE id = 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn a_chain_with_its_key_missing_or_another_key_is_refused_and_no_key_is_made() {
    let s = scratch();
    drop(open_direct(&s.db, &s.key).unwrap());
    let elsewhere = KeyFile::new(s.key.path().with_file_name("other.key"));
    let err = open_direct(&s.db, &elsewhere).unwrap_err();
    assert!(
        matches!(err, crate::store::OpenError::Chain(ChainError::KeyMissing { .. })),
        "{err}"
    );
    assert!(
        !elsewhere.path().exists(),
        "never a new key for an existing chain"
    );

    elsewhere.load_or_create().unwrap();
    let err = open_direct(&s.db, &elsewhere).unwrap_err();
    assert!(
        matches!(err, crate::store::OpenError::Chain(ChainError::WrongKey { .. })),
        "{err}"
    );
}

#[test]
fn rows_from_before_the_chain_are_sealed_once_and_an_edit_among_them_is_caught() {
    let s = scratch();
    {
        // a database of the previous schema, with rows
        let conn = Connection::open(&s.db).unwrap();
        for step in &migrations::MIGRATIONS[..9] {
            conn.execute_batch(step.sqlite).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        for action in ["ssh.command.start", "ssh.command.end", "user.add"] {
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, command) VALUES ('2026-01-01T00:00:00.000Z', 'c1', ?1, 'ls')",
                [action],
            )
            .unwrap();
        }
    }
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    assert_eq!(chain.genesis().id, 3);
    let domain: String = conn
        .query_row("SELECT domain FROM audit_events WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(domain, "stub", "rows from before get their action's domain");
    append(&mut conn, &chain, &["d"]);
    drop(conn);
    // opened again: sealed once, the same genesis
    let (_, again) = open_direct(&s.db, &s.key).unwrap();
    assert_eq!(again.genesis(), chain.genesis());
    let ok = verified(&s.db, &s.key, None).unwrap();
    assert_eq!((ok.start.id, ok.rows, ok.head.id), (3, 1, 4));

    attacker(&s.db)
        .execute("UPDATE audit_events SET command = 'rm -rf /' WHERE id = 2", [])
        .unwrap();
    assert_eq!(
        verified(&s.db, &s.key, None).unwrap_err(),
        Broken {
            row: 3,
            problem: Problem::Sealed
        }
    );
}

#[test]
fn a_cut_takes_the_old_prefix_records_it_and_still_verifies() {
    let s = scratch();
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(30);
    let rows: Vec<NewAuditEvent> = (0..4)
        .map(|i| {
            let mut e = event(&format!("old{i}"));
            e.at = old;
            e
        })
        .collect();
    audit::append(&mut conn, &chain, &rows).unwrap();
    append(&mut conn, &chain, &["young1", "young2"]);
    let cut = super::cut(
        &mut conn,
        &chain,
        chrono::Utc::now() - chrono::Duration::days(1),
        u32::MAX,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        cut,
        crate::records::AuditCut {
            through_id: 4,
            rows: 4,
            cut_id: 7
        }
    );
    let ok = verified(&s.db, &s.key, None).unwrap();
    assert_eq!((ok.start.id, ok.rows, ok.head.id), (4, 3, 7));
    // nothing more is old enough
    assert_eq!(
        super::cut(
            &mut conn,
            &chain,
            chrono::Utc::now() - chrono::Duration::days(1),
            u32::MAX
        )
        .unwrap(),
        None
    );
    // appending goes on after the cut row
    assert_eq!(append(&mut conn, &chain, &["later"]), [8]);
    assert!(verified(&s.db, &s.key, None).is_ok());

    // an attacker deletes more than the cut says
    attacker(&s.db)
        .execute("DELETE FROM audit_events WHERE id = 5", [])
        .unwrap();
    assert_eq!(
        verified(&s.db, &s.key, None).unwrap_err(),
        Broken {
            row: 5,
            problem: Problem::Missing { next: 6 }
        }
    );
}

#[test]
fn a_cut_with_a_limit_takes_the_old_prefix_in_pieces_and_each_verifies() {
    let s = scratch();
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(30);
    let rows: Vec<NewAuditEvent> = (0..5)
        .map(|i| {
            let mut e = event(&format!("old{i}"));
            e.at = old;
            e
        })
        .collect();
    audit::append(&mut conn, &chain, &rows).unwrap();
    append(&mut conn, &chain, &["young"]);
    let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
    let mut pieces = Vec::new();
    while let Some(cut) = super::cut(&mut conn, &chain, day_ago, 2).unwrap() {
        pieces.push((cut.through_id, cut.rows));
        assert!(verified(&s.db, &s.key, None).is_ok(), "after {cut:?}");
    }
    assert_eq!(pieces, [(2, 2), (4, 2), (5, 1)]);
    let left: Vec<String> = conn
        .prepare("SELECT action FROM audit_events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["young", "audit.cut", "audit.cut", "audit.cut"]);
}

#[test]
fn a_cut_waits_for_every_sealed_row_to_be_old_and_then_takes_them_all() {
    let s = scratch();
    {
        let conn = Connection::open(&s.db).unwrap();
        for step in &migrations::MIGRATIONS[..9] {
            conn.execute_batch(step.sqlite).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        let old = timestamp(chrono::Utc::now() - chrono::Duration::days(30));
        let young = timestamp(chrono::Utc::now());
        for at in [&old, &young] {
            conn.execute(
                "INSERT INTO audit_events (at, actor, action) VALUES (?1, 'c1', 'x')",
                [at],
            )
            .unwrap();
        }
    }
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    let week_ago = chrono::Utc::now() - chrono::Duration::days(7);
    assert_eq!(
        super::cut(&mut conn, &chain, week_ago, u32::MAX).unwrap(),
        None,
        "row 2 is young"
    );
    let everything = chrono::Utc::now() + chrono::Duration::days(1);
    // a limit of one row does not split the sealed rows: they share a MAC
    let cut = super::cut(&mut conn, &chain, everything, 1).unwrap().unwrap();
    assert_eq!((cut.through_id, cut.rows, cut.cut_id), (2, 2, 3));
    let detail: String = conn
        .query_row("SELECT detail FROM audit_events WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    assert!(
        detail.contains(&chain.genesis().mac.to_hex()),
        "the genesis is the cut's last MAC"
    );
    let ok = verified(&s.db, &s.key, None).unwrap();
    assert_eq!((ok.start.id, ok.head.id), (2, 3));
}

#[test]
fn appends_from_two_store_threads_and_another_process_at_once_keep_one_chain() {
    let s = scratch();
    drop(open_direct(&s.db, &s.key).unwrap());
    // three writers, each with its own connection and a copy of the chain,
    // as the store's two threads and the command line have
    std::thread::scope(|scope| {
        for writer in 0..3 {
            let (db, key) = (&s.db, &s.key);
            scope.spawn(move || {
                let (mut conn, chain) = open_direct(db, key).unwrap();
                for n in 0..40 {
                    let name = format!("w{writer}-{n}");
                    if writer == 2 {
                        // the command line: one row inside a bigger transaction
                        let tx = conn
                            .transaction_with_behavior(TransactionBehavior::Immediate)
                            .unwrap();
                        audit::insert_audit(&tx, &chain, &event(&name)).unwrap();
                        tx.commit().unwrap();
                    } else {
                        append(&mut conn, &chain, &[&name, &format!("{name}b")]);
                    }
                }
            });
        }
    });
    let ok = verified(&s.db, &s.key, None).unwrap();
    assert_eq!(ok.rows, 40 * 2 * 2 + 40);
}

#[test]
fn a_row_put_back_below_a_cut_is_named() {
    let s = scratch();
    let (mut conn, chain) = open_direct(&s.db, &s.key).unwrap();
    append(&mut conn, &chain, &["a", "b", "c"]);
    let cut = super::cut(
        &mut conn,
        &chain,
        chrono::Utc::now() + chrono::Duration::days(1),
        u32::MAX,
    )
    .unwrap()
    .unwrap();
    assert_eq!((cut.through_id, cut.cut_id), (3, 4));
    // a row the cut took, put back from a backup
    attacker(&s.db)
        .execute(
            "INSERT INTO audit_events (id, at, actor, action, domain, instance) VALUES (2, '2026-01-01T00:00:00.000Z', 'x', 'b', 'system', 'local')",
            [],
        )
        .unwrap();
    assert_eq!(
        verified(&s.db, &s.key, None).unwrap_err(),
        Broken {
            row: 2,
            problem: Problem::NotCut { cut: 4, through: 3 }
        }
    );
}
