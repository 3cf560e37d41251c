//! What only SQLite can show: each retention step finds its rows through
//! an index of migration 12, not by reading the whole table (the
//! contract itself is tested on both stores in `crate::retention`).

use rusqlite::Connection;

use super::super::migrations;

fn plan(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map(["2026-01-01T00:00:00.000Z", "1"], |r| r.get::<_, String>(3))
        .unwrap();
    rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
}

#[test]
fn each_retention_step_finds_its_rows_through_an_index() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::migrate(&mut conn).unwrap();
    for (tables, index) in [
        (&crate::store::migrations::BATCH_RUNS, "batch_runs_finished"),
        (&crate::store::migrations::WORKFLOW_RUNS, "workflow_runs_finished"),
    ] {
        let found = plan(
            &conn,
            &format!(
                "SELECT run_id FROM {} WHERE finished_at < ?1 AND status NOT IN ({})
                 ORDER BY finished_at, seq LIMIT ?2",
                tables.runs, tables.live
            ),
        );
        assert!(found.contains(index), "{found}");
        assert!(
            !found.contains("TEMP B-TREE"),
            "no sort of the whole range: {found}"
        );
        let children = plan(
            &conn,
            &format!(
                "SELECT {key} FROM {children} WHERE run_id = ?1 AND ({key}) IN
                    (SELECT {key} FROM {children} WHERE run_id = ?1 LIMIT ?2)",
                key = tables.child_key,
                children = tables.children
            ),
        );
        assert!(
            children.contains("USING") && !children.contains(&format!("SCAN {}", tables.children)),
            "{children}"
        );
    }
    let health = plan(
        &conn,
        "SELECT h.id FROM health_events h
         WHERE h.at < ?1
           AND EXISTS (SELECT 1 FROM health_events n WHERE n.server = h.server AND n.id > h.id)
         ORDER BY h.at, h.id LIMIT ?2",
    );
    assert!(health.contains("health_events_at"), "{health}");
    assert!(health.contains("health_events_server"), "{health}");
}
