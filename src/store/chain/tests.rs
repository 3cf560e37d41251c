use super::*;

fn key() -> AuditKey {
    AuditKey::from_bytes([7; 32])
}

fn row(id: i64, action: &str) -> Vec<Field> {
    let mut fields = vec![Field::Null; COLUMNS.len()];
    fields[0] = Field::Int(id);
    fields[1] = Field::Text("local".into());
    fields[7] = Field::Text(action.into());
    fields
}

/// A chain of `n` rows after a genesis of nothing: (start, rows with MACs).
fn chain(key: &AuditKey, n: i64) -> (Head, Vec<(Vec<Field>, String)>) {
    let (genesis, _) = key.genesis().finish();
    let start = Head { id: 0, mac: genesis };
    let mut prev = genesis;
    let rows = (1..=n)
        .map(|id| {
            let fields = row(id, &format!("a{id}"));
            prev = key.link(&prev, &fields);
            (fields, prev.to_hex())
        })
        .collect();
    (start, rows)
}

fn walk(
    key: &AuditKey,
    start: Head,
    rows: &[(Vec<Field>, String)],
    head: Option<Head>,
) -> Result<Verified, Broken> {
    let mut walk = Walk::new(key, start, head)?;
    for (fields, mac) in rows {
        let Field::Int(id) = fields[0] else { unreachable!() };
        walk.row(id, fields, Some(mac))?;
    }
    walk.finish()
}

#[test]
fn an_untouched_chain_verifies_and_ends_at_its_last_row() {
    let key = key();
    let (start, rows) = chain(&key, 5);
    let ok = walk(&key, start, &rows, None).unwrap();
    assert_eq!((ok.rows, ok.head.id), (5, 5));
    assert_eq!(ok.head.mac.to_hex(), rows[4].1);
}

#[test]
fn an_edited_field_breaks_its_own_row_first() {
    let key = key();
    let (start, mut rows) = chain(&key, 5);
    rows[2].0[7] = Field::Text("edited".into());
    assert_eq!(
        walk(&key, start, &rows, None).unwrap_err(),
        Broken {
            row: 3,
            problem: Problem::Mac
        }
    );
}

#[test]
fn a_row_deleted_from_the_middle_is_named_missing() {
    let key = key();
    let (start, mut rows) = chain(&key, 5);
    rows.remove(1);
    assert_eq!(
        walk(&key, start, &rows, None).unwrap_err(),
        Broken {
            row: 2,
            problem: Problem::Missing { next: 3 }
        }
    );
}

#[test]
fn two_rows_swapped_with_their_macs_break_the_chain() {
    let key = key();
    let (start, mut rows) = chain(&key, 4);
    // the attacker swaps the content and renumbers, keeping the MACs
    let (a, b) = (rows[1].0[7].clone(), rows[2].0[7].clone());
    rows[1].0[7] = b;
    rows[2].0[7] = a;
    assert_eq!(walk(&key, start, &rows, None).unwrap_err().row, 2);
}

#[test]
fn a_chain_recomputed_with_another_key_fails_at_its_first_row() {
    let (start, rows) = chain(&AuditKey::from_bytes([9; 32]), 3);
    let err = walk(&key(), start, &rows, None).unwrap_err();
    assert_eq!(
        err,
        Broken {
            row: 1,
            problem: Problem::Mac
        }
    );
}

#[test]
fn the_newest_rows_deleted_pass_alone_and_fail_against_a_head_kept_before() {
    let key = key();
    let (start, rows) = chain(&key, 5);
    let head: Head = format!("5:{}", rows[4].1).parse().unwrap();
    let shortened = &rows[..3];
    assert!(
        walk(&key, start, shortened, None).is_ok(),
        "the chain alone cannot tell"
    );
    assert_eq!(
        walk(&key, start, shortened, Some(head)).unwrap_err(),
        Broken {
            row: 5,
            problem: Problem::HeadMissing { last: 3 }
        }
    );
    // and rows written after a head was kept do not disturb it
    let older: Head = format!("2:{}", rows[1].1).parse().unwrap();
    assert!(walk(&key, start, &rows, Some(older)).unwrap().head_checked);
}

#[test]
fn newest_rows_replaced_by_new_ones_differ_from_the_head_kept_before() {
    let key = key();
    let (start, rows) = chain(&key, 4);
    let head: Head = format!("4:{}", rows[3].1).parse().unwrap();
    // rows 3 and 4 deleted, then the daemon wrote two other rows 3 and 4
    let mut rewritten = rows[..2].to_vec();
    let mut prev = Mac::from_hex(&rows[1].1).unwrap();
    for id in 3..=4 {
        let fields = row(id, "later");
        prev = key.link(&prev, &fields);
        rewritten.push((fields, prev.to_hex()));
    }
    assert!(walk(&key, start, &rewritten, None).is_ok());
    assert_eq!(
        walk(&key, start, &rewritten, Some(head)).unwrap_err(),
        Broken {
            row: 4,
            problem: Problem::HeadDiffers
        }
    );
}

#[test]
fn the_encoding_tells_apart_values_that_would_run_together() {
    let key = key();
    let mut a = row(1, "ab");
    a[8] = Field::Text("c".into());
    let mut b = row(1, "a");
    b[8] = Field::Text("bc".into());
    let mut c = row(1, "ab");
    c[8] = Field::Null;
    let mut d = row(1, "ab");
    d[8] = Field::Text(String::new());
    let mut e = row(1, "ab");
    e[8] = Field::Int(0);
    let prev = Mac([0; 32]);
    let macs: Vec<Mac> = [a, b, c, d, e].iter().map(|r| key.link(&prev, r)).collect();
    for (i, x) in macs.iter().enumerate() {
        for y in &macs[i + 1..] {
            assert_ne!(x, y);
        }
    }
}

#[test]
fn the_genesis_covers_every_sealed_row_and_their_count() {
    let key = key();
    let sealed = |rows: &[Vec<Field>]| {
        let mut g = key.genesis();
        for r in rows {
            g.row(r);
        }
        g.finish()
    };
    let rows = vec![row(1, "a"), row(2, "b")];
    let (mac, n) = sealed(&rows);
    assert_eq!(n, 2);
    assert_ne!(mac, sealed(&rows[..1]).0);
    assert_ne!(mac, sealed(&[row(1, "a"), row(2, "B")]).0);
    assert_ne!(mac, sealed(&[]).0);
}

#[test]
fn a_head_reads_back_what_it_prints_and_refuses_anything_else() {
    let head = Head {
        id: 42,
        mac: Mac([0xa5; 32]),
    };
    assert_eq!(head.to_string().parse::<Head>(), Ok(head));
    let short = format!("42:{}", "a5".repeat(31));
    for bad in ["", "42", "42:", "x:00", "-1:00", short.as_str()] {
        let err = bad.parse::<Head>().unwrap_err();
        assert!(err.contains("<row id>:<64 hex digits>"), "{err}");
    }
}

#[test]
fn a_key_check_value_tells_keys_apart() {
    assert!(key().check_value().matches(&key().check_value()));
    assert!(!key()
        .check_value()
        .matches(&AuditKey::from_bytes([8; 32]).check_value()));
}
