//! [`AccountStore`]'s contract, written once against the trait and run on
//! both stores (SQLite and PostgreSQL), and what only several instances
//! on one PostgreSQL database can show: a change or a sign-in on one is
//! seen by the other's `changes`, and the last enabled admin and the
//! per-user session cap hold when two instances change accounts at once.

use std::sync::Arc;

use chrono::{Duration, Utc};
use pinkpage_actors::access::Role;
use pinkpage_actors::{AppError, ErrorCode};

use crate::accounts::token::{digest, new_session_secret};
use crate::accounts::{AccessChanges, SessionChanges, SessionRow, StartedSession, TokenState, MAX_LABEL_LEN};
use crate::records::timestamp as rfc3339;
use crate::store::postgres::testing::TestDatabase;
use crate::store::{AccountStore, UserChange};

const HASH: &str = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
const OTHER_HASH: &str = "$argon2id$v=19$m=65536,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNo";
const PLENTY: usize = 1000;

type Store = Arc<dyn AccountStore>;

/// Runs each contract on SQLite and on PostgreSQL, as tests of the same
/// name in `on_sqlite` and `on_postgres`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[actix::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let key = crate::store::chain::KeyFile::new(dir.path().join("audit.key"));
                    let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"), &key)
                        .unwrap_or_else(|e| panic!("{e}"));
                    super::$name(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[actix::test]
                async fn $name() {
                    let (store, _db) = crate::store::postgres::testing::store();
                    super::$name(store).await;
                }
            )*
        }
    };
}

contract!(
    a_user_round_trips,
    a_proxy_only_user_has_no_password_and_every_server,
    duplicate_and_bad_names_and_tags_are_refused,
    a_change_applies_whole_and_moves_the_changed_time,
    the_last_enabled_admin_is_never_lost,
    every_account_or_token_change_moves_the_revision_and_reading_does_not,
    a_token_round_trips_with_only_its_digest_stored,
    revoked_and_expired_tokens_are_listed_as_such,
    bad_token_requests_are_refused,
    a_session_round_trips,
    sessions_need_an_enabled_existing_user,
    sessions_move_the_session_log_and_not_the_access_revision,
    past_the_per_user_cap_the_oldest_sessions_end,
    a_new_password_or_disabling_ends_the_accounts_sessions,
    persisting_writes_last_use_back_and_sweeps_ended_sessions,
    a_pruned_log_sends_a_reader_that_is_behind_to_a_whole_reload,
);

fn code<T>(r: Result<T, AppError>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

fn role(role: Role) -> UserChange {
    UserChange {
        role: Some(role),
        ..UserChange::default()
    }
}

fn disabled(disabled: bool) -> UserChange {
    UserChange {
        disabled: Some(disabled),
        ..UserChange::default()
    }
}

async fn add(store: &Store, name: &str, role: Role) {
    store.add_user(name.into(), role, None, None).await.unwrap();
}

/// The access revision and the session log's number now.
async fn marks(store: &Store) -> (i64, i64) {
    let loaded = store.load().await.unwrap();
    (loaded.revision, loaded.session_seq)
}

fn session_changes(changes: AccessChanges) -> SessionChanges {
    match changes {
        AccessChanges::Sessions(c) => c,
        AccessChanges::Unchanged => panic!("expected session changes, got none"),
        AccessChanges::Reload(_) => panic!("expected session changes, got a reload"),
    }
}

async fn start_capped(store: &Store, user: &str, lifetime: Duration, per_user: usize) -> StartedSession {
    let cookie = new_session_secret();
    store
        .create_session(
            user.into(),
            digest(cookie.expose()),
            Utc::now() + lifetime,
            Some("127.0.0.1".into()),
            per_user,
        )
        .await
        .unwrap()
}

async fn start(store: &Store, user: &str, lifetime: Duration) -> SessionRow {
    start_capped(store, user, lifetime, PLENTY).await.session
}

async fn session_ids(store: &Store) -> Vec<String> {
    store
        .load()
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn a_user_round_trips(store: Store) {
    let added = store
        .add_user(
            "ana.lee".into(),
            Role::Operator,
            Some(vec!["b".into(), "a".into(), "a".into()]),
            Some(HASH.into()),
        )
        .await
        .unwrap();
    assert_eq!(added.name, "ana.lee");
    assert_eq!(added.role, Role::Operator);
    assert_eq!(added.servers, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert!(!added.disabled && added.has_password);
    assert_eq!(added.created_at, added.changed_at);
    assert_eq!(store.list_users().await.unwrap(), vec![added.clone()]);
    assert_eq!(store.load().await.unwrap().users, vec![added.clone()]);
    assert_eq!(
        store.user_with_password("ana.lee".into()).await.unwrap(),
        Some((added.clone(), HASH.to_owned()))
    );
    let json = serde_json::to_value(&added).unwrap();
    assert_eq!(json["role"], "operator");
    assert!(!json.to_string().contains("argon2"));
    // by name
    add(&store, "bob", Role::Viewer).await;
    add(&store, "al", Role::Viewer).await;
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["al", "ana.lee", "bob"]);
}

async fn a_proxy_only_user_has_no_password_and_every_server(store: Store) {
    let u = store
        .add_user("sso@example.com".into(), Role::Viewer, None, None)
        .await
        .unwrap();
    assert!(!u.has_password);
    assert_eq!(u.servers, None);
    assert_eq!(
        store.user_with_password("sso@example.com".into()).await.unwrap(),
        None
    );
    assert_eq!(store.user_with_password("nobody".into()).await.unwrap(), None);
}

async fn duplicate_and_bad_names_and_tags_are_refused(store: Store) {
    add(&store, "ana", Role::Admin).await;
    let again = store.add_user("ana".into(), Role::Viewer, None, None).await;
    assert_eq!(code(again), ErrorCode::Validation);
    for name in [
        "",
        "-x",
        ".ana",
        "ana lee",
        "ana/lee",
        "añа",
        "a\0b",
        &"a".repeat(65),
    ] {
        let r = store.add_user(name.into(), Role::Viewer, None, None).await;
        assert_eq!(code(r), ErrorCode::Validation, "{name:?}");
    }
    add(&store, &"a".repeat(64), Role::Viewer).await;
    for tags in [
        vec![],
        vec!["".to_owned()],
        vec!["a b".to_owned()],
        vec!["a,b".to_owned()],
        vec!["a\0b".to_owned()],
        vec!["a\u{a0}b".to_owned()],
        vec!["a\u{9b}b".to_owned()],
        vec!["é".repeat(65)],
    ] {
        let r = store
            .add_user("tagged".into(), Role::Viewer, Some(tags.clone()), None)
            .await;
        assert_eq!(code(r), ErrorCode::Validation, "{tags:?}");
    }
    // the limit is in characters, not bytes
    store
        .add_user("tagged".into(), Role::Viewer, Some(vec!["é".repeat(64)]), None)
        .await
        .unwrap();
    assert_eq!(store.list_users().await.unwrap().len(), 3);
}

async fn a_change_applies_whole_and_moves_the_changed_time(store: Store) {
    add(&store, "root", Role::Admin).await;
    let before = store
        .add_user("ana".into(), Role::Viewer, None, None)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await; // distinct millisecond stamps
    let u = store
        .change_user(
            "ana".into(),
            UserChange {
                role: Some(Role::Admin),
                servers: Some(Some(vec!["prod".into()])),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.role, Role::Admin);
    assert_eq!(u.servers, Some(vec!["prod".to_owned()]));
    assert!(u.changed_at > before.changed_at);
    assert_eq!(u.created_at, before.created_at);
    let lifted = UserChange {
        servers: Some(None),
        ..UserChange::default()
    };
    assert_eq!(
        store.change_user("ana".into(), lifted).await.unwrap().servers,
        None
    );
    let password = UserChange {
        password_hash: Some(HASH.into()),
        ..UserChange::default()
    };
    assert!(
        store
            .change_user("ana".into(), password)
            .await
            .unwrap()
            .has_password
    );
    assert!(
        store
            .change_user("ana".into(), disabled(true))
            .await
            .unwrap()
            .disabled
    );
    assert!(
        !store
            .change_user("ana".into(), disabled(false))
            .await
            .unwrap()
            .disabled
    );
    // a bad tag refuses the whole change: the role stays
    let bad = UserChange {
        role: Some(Role::Viewer),
        servers: Some(Some(vec!["a b".into()])),
        ..UserChange::default()
    };
    assert_eq!(
        code(store.change_user("ana".into(), bad).await),
        ErrorCode::Validation
    );
    let ana = store.user_with_password("ana".into()).await.unwrap().unwrap().0;
    assert_eq!(ana.role, Role::Admin);
    assert_eq!(
        code(store.change_user("ghost".into(), role(Role::Admin)).await),
        ErrorCode::NotFound
    );
}

async fn the_last_enabled_admin_is_never_lost(store: Store) {
    add(&store, "root", Role::Admin).await;
    add(&store, "ana", Role::Viewer).await;
    assert_eq!(
        code(store.change_user("root".into(), disabled(true)).await),
        ErrorCode::Validation
    );
    assert_eq!(
        code(store.change_user("root".into(), role(Role::Operator)).await),
        ErrorCode::Validation
    );
    // refused whole: the new password of the same change is not kept
    let both = UserChange {
        role: Some(Role::Viewer),
        password_hash: Some(HASH.into()),
        ..UserChange::default()
    };
    assert_eq!(
        code(store.change_user("root".into(), both).await),
        ErrorCode::Validation
    );
    assert_eq!(store.user_with_password("root".into()).await.unwrap(), None);
    // with a second admin, one may go; a disabled admin does not count
    store.change_user("ana".into(), role(Role::Admin)).await.unwrap();
    store.change_user("root".into(), disabled(true)).await.unwrap();
    assert_eq!(
        code(store.change_user("ana".into(), role(Role::Viewer)).await),
        ErrorCode::Validation
    );
    // changes that keep an admin pass
    store.change_user("ana".into(), role(Role::Admin)).await.unwrap();
    store.change_user("root".into(), disabled(false)).await.unwrap();
    store.change_user("ana".into(), disabled(true)).await.unwrap();
}

async fn every_account_or_token_change_moves_the_revision_and_reading_does_not(store: Store) {
    let (rev, seq) = marks(&store).await;
    assert!(matches!(
        store.changes(rev, seq).await.unwrap(),
        AccessChanges::Unchanged
    ));
    add(&store, "root", Role::Admin).await;
    let reloaded = match store.changes(rev, seq).await.unwrap() {
        AccessChanges::Reload(loaded) => loaded,
        _ => panic!("a new account reloads"),
    };
    assert!(reloaded.revision > rev);
    assert_eq!(reloaded.users.len(), 1);
    let mut rev = reloaded.revision;
    let mut moved = |now: i64| {
        let grew = now > rev;
        rev = now;
        grew
    };
    add(&store, "ana", Role::Viewer).await;
    assert!(moved(marks(&store).await.0));
    store
        .change_user("ana".into(), role(Role::Operator))
        .await
        .unwrap();
    assert!(moved(marks(&store).await.0));
    store.change_user("ana".into(), disabled(true)).await.unwrap();
    assert!(moved(marks(&store).await.0));
    let (token, _) = store.create_token("ana".into(), "".into(), None).await.unwrap();
    assert!(moved(marks(&store).await.0));
    store.revoke_token(token.id).await.unwrap();
    assert!(moved(marks(&store).await.0));
    store.list_users().await.unwrap();
    store.list_tokens(None).await.unwrap();
    store.user_with_password("ana".into()).await.unwrap();
    assert!(!moved(marks(&store).await.0), "reading is not a change");
    // refused changes move nothing either
    let _ = store.change_user("root".into(), disabled(true)).await;
    let _ = store.add_user("ana".into(), Role::Viewer, None, None).await;
    assert!(!moved(marks(&store).await.0));
}

async fn a_token_round_trips_with_only_its_digest_stored(store: Store) {
    add(&store, "ana", Role::Operator).await;
    let (info, full) = store
        .create_token("ana".into(), "deploy script".into(), Some(Duration::days(30)))
        .await
        .unwrap();
    assert_eq!(info.user, "ana");
    assert_eq!(info.label, "deploy script");
    assert!(info.expires_at.is_some() && info.revoked_at.is_none() && info.last_used_at.is_none());
    assert!(full.expose().starts_with(&format!("ppt_{}_", info.id)));
    assert!(!format!("{full:?}").contains(full.expose()));
    let tokens = store.load().await.unwrap().tokens;
    assert_eq!(tokens, vec![(info.clone(), digest(full.expose()))]);
    assert_ne!(tokens[0].1, full.expose());
    assert_eq!(
        store.list_tokens(Some("ana".into())).await.unwrap(),
        vec![info.clone()]
    );
    assert!(store.list_tokens(Some("bob".into())).await.unwrap().is_empty());
    // newest first
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let (newer, _) = store.create_token("ana".into(), "".into(), None).await.unwrap();
    assert_eq!(newer.expires_at, None);
    assert_eq!(store.list_tokens(None).await.unwrap(), vec![newer, info]);
}

async fn revoked_and_expired_tokens_are_listed_as_such(store: Store) {
    add(&store, "ana", Role::Operator).await;
    let (a, _) = store
        .create_token("ana".into(), "a".into(), Some(Duration::hours(1)))
        .await
        .unwrap();
    let (b, _) = store
        .create_token("ana".into(), "b".into(), Some(Duration::hours(1)))
        .await
        .unwrap();
    let revoked = store.revoke_token(a.id.clone()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert_eq!(
        store.revoke_token(a.id.clone()).await.unwrap().revoked_at,
        revoked.revoked_at,
        "revoking again keeps the first time"
    );
    let now = Utc::now();
    let listed = store.list_tokens(None).await.unwrap();
    let state = |id: &str, at| listed.iter().find(|t| t.id == id).unwrap().state(at);
    assert_eq!(state(&a.id, now), TokenState::Revoked);
    assert_eq!(state(&b.id, now), TokenState::Active);
    assert_eq!(state(&b.id, now + Duration::hours(2)), TokenState::Expired);
    assert_eq!(
        code(store.revoke_token("000000000000".into()).await),
        ErrorCode::NotFound
    );
}

async fn bad_token_requests_are_refused(store: Store) {
    add(&store, "ana", Role::Operator).await;
    assert_eq!(
        code(store.create_token("ghost".into(), "".into(), None).await),
        ErrorCode::NotFound
    );
    for control in ["a\nb", "a\0b", "a\u{7f}b", "a\u{9b}b"] {
        let r = store.create_token("ana".into(), control.into(), None).await;
        assert_eq!(code(r), ErrorCode::Validation, "{control:?}");
    }
    // the limit is in characters, not bytes
    store
        .create_token("ana".into(), "é".repeat(MAX_LABEL_LEN), None)
        .await
        .unwrap();
    let long = "x".repeat(MAX_LABEL_LEN + 1);
    assert_eq!(
        code(store.create_token("ana".into(), long, None).await),
        ErrorCode::Validation
    );
    let past = Some(Duration::seconds(-1));
    assert_eq!(
        code(store.create_token("ana".into(), "".into(), past).await),
        ErrorCode::Validation
    );
    let too_far = Some(Duration::MAX);
    assert_eq!(
        code(store.create_token("ana".into(), "".into(), too_far).await),
        ErrorCode::Validation
    );
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 1);
}

async fn a_session_round_trips(store: Store) {
    add(&store, "ana", Role::Operator).await;
    let cookie = new_session_secret();
    let hash = digest(cookie.expose());
    let expires = Utc::now() + Duration::hours(8);
    let started = store
        .create_session("ana".into(), hash.clone(), expires, None, PLENTY)
        .await
        .unwrap();
    assert!(started.ended.is_empty());
    let s = started.session;
    assert_eq!(s.user, "ana");
    assert_eq!(s.id.len(), 12);
    assert_eq!(s.secret_hash, hash);
    assert_eq!(s.created_at, s.last_seen_at);
    assert_eq!(s.expires_at, rfc3339(expires));
    assert_eq!(s.remote_addr, None);
    assert_eq!(store.load().await.unwrap().sessions, vec![s.clone()]);
    assert!(!serde_json::to_string(&s).unwrap().contains(&hash));
    let with_addr = start(&store, "ana", Duration::hours(1)).await;
    assert_eq!(with_addr.remote_addr.as_deref(), Some("127.0.0.1"));
    assert!(with_addr.seq > s.seq);
    // oldest first
    assert_eq!(session_ids(&store).await, [s.id, with_addr.id]);
}

async fn sessions_need_an_enabled_existing_user(store: Store) {
    add(&store, "root", Role::Admin).await;
    add(&store, "bob", Role::Viewer).await;
    let far = Utc::now() + Duration::hours(1);
    assert_eq!(
        code(
            store
                .create_session("ghost".into(), "h".into(), far, None, PLENTY)
                .await
        ),
        ErrorCode::NotFound
    );
    store.change_user("bob".into(), disabled(true)).await.unwrap();
    assert_eq!(
        code(
            store
                .create_session("bob".into(), "h".into(), far, None, PLENTY)
                .await
        ),
        ErrorCode::Validation
    );
    assert!(store.load().await.unwrap().sessions.is_empty());
}

async fn sessions_move_the_session_log_and_not_the_access_revision(store: Store) {
    add(&store, "ana", Role::Operator).await;
    add(&store, "bob", Role::Viewer).await;
    let (rev, q0) = marks(&store).await;
    let kept = start(&store, "ana", Duration::hours(1)).await;
    let c = session_changes(store.changes(rev, q0).await.unwrap());
    assert_eq!(c.started, vec![kept.clone()]);
    assert!(c.ended.is_empty());
    assert_eq!(c.seq, kept.seq, "a session carries its number");
    let gone = start(&store, "bob", Duration::hours(1)).await;
    assert!(store.delete_session(gone.id.clone()).await.unwrap());
    assert!(!store.delete_session(gone.id.clone()).await.unwrap());
    let (rev_now, q_now) = marks(&store).await;
    assert_eq!(rev_now, rev, "a sign-in or sign-out reloads no account or token");
    // a session started and ended since is only among the ended
    let c = session_changes(store.changes(rev, q0).await.unwrap());
    assert_eq!(c.seq, q_now);
    assert_eq!(c.started, vec![kept.clone()]);
    assert_eq!(c.ended, vec![gone.id.clone()]);
    let c = session_changes(store.changes(rev, kept.seq).await.unwrap());
    assert!(c.started.is_empty());
    assert_eq!(c.ended, vec![gone.id]);
    assert!(matches!(
        store.changes(rev, q_now).await.unwrap(),
        AccessChanges::Unchanged
    ));
    // a log behind the copy is another history: reload
    assert!(matches!(
        store.changes(rev, q_now + 1).await.unwrap(),
        AccessChanges::Reload(_)
    ));
}

async fn past_the_per_user_cap_the_oldest_sessions_end(store: Store) {
    add(&store, "ana", Role::Operator).await;
    add(&store, "bob", Role::Viewer).await;
    let bobs = start(&store, "bob", Duration::hours(1)).await;
    let mut anas = Vec::new();
    for _ in 0..3 {
        let started = start_capped(&store, "ana", Duration::hours(1), 3).await;
        assert!(started.ended.is_empty());
        anas.push(started.session);
    }
    let fourth = start_capped(&store, "ana", Duration::hours(1), 3).await;
    assert_eq!(fourth.ended, vec![anas[0].id.clone()]);
    // a lower cap ends as many as it takes, oldest first
    let fifth = start_capped(&store, "ana", Duration::hours(1), 2).await;
    assert_eq!(fifth.ended, vec![anas[1].id.clone(), anas[2].id.clone()]);
    // a cap of 0 is taken as 1
    let sixth = start_capped(&store, "ana", Duration::hours(1), 0).await;
    assert_eq!(
        sixth.ended,
        vec![fourth.session.id.clone(), fifth.session.id.clone()]
    );
    assert_eq!(session_ids(&store).await, [bobs.id, sixth.session.id]);
}

async fn a_new_password_or_disabling_ends_the_accounts_sessions(store: Store) {
    add(&store, "root", Role::Admin).await;
    add(&store, "ana", Role::Operator).await;
    let roots = start(&store, "root", Duration::hours(1)).await;
    start(&store, "ana", Duration::hours(1)).await;
    start(&store, "ana", Duration::hours(1)).await;
    let password = UserChange {
        password_hash: Some(OTHER_HASH.into()),
        ..UserChange::default()
    };
    store.change_user("ana".into(), password).await.unwrap();
    assert_eq!(session_ids(&store).await, vec![roots.id.clone()]);
    assert_eq!(
        store.user_with_password("ana".into()).await.unwrap().unwrap().1,
        OTHER_HASH
    );
    start(&store, "ana", Duration::hours(1)).await;
    store.change_user("ana".into(), disabled(true)).await.unwrap();
    assert_eq!(session_ids(&store).await, vec![roots.id.clone()]);
    // enabling brings none back; a role change ends none
    store.change_user("ana".into(), disabled(false)).await.unwrap();
    assert_eq!(session_ids(&store).await, vec![roots.id.clone()]);
    let anas = start(&store, "ana", Duration::hours(1)).await;
    store.change_user("ana".into(), role(Role::Viewer)).await.unwrap();
    assert_eq!(session_ids(&store).await, [roots.id, anas.id]);
}

async fn persisting_writes_last_use_back_and_sweeps_ended_sessions(store: Store) {
    add(&store, "ana", Role::Operator).await;
    add(&store, "bob", Role::Viewer).await;
    let idle = Duration::minutes(30);
    let short = start(&store, "ana", Duration::minutes(1)).await;
    let long = start(&store, "ana", Duration::hours(1)).await;
    let used = start(&store, "bob", Duration::hours(1)).await;
    assert_eq!(store.persist_sessions(vec![], Utc::now(), idle).await.unwrap(), 0);
    let in_ten_minutes = Utc::now() + Duration::minutes(10);
    assert_eq!(
        store
            .persist_sessions(vec![], in_ten_minutes, idle)
            .await
            .unwrap(),
        1
    );
    assert_eq!(session_ids(&store).await, [long.id.clone(), used.id.clone()]);
    assert_ne!(long.id, short.id);
    // forty minutes on, only the session used meanwhile is left; a
    // session ended meanwhile is skipped, and the last time given counts
    let in_forty_minutes = Utc::now() + Duration::minutes(40);
    let last_use = in_forty_minutes - Duration::minutes(1);
    let seen = vec![
        (used.id.clone(), in_ten_minutes),
        ("000000000000".to_owned(), last_use),
        (used.id.clone(), last_use),
    ];
    assert_eq!(
        store
            .persist_sessions(seen, in_forty_minutes, idle)
            .await
            .unwrap(),
        1
    );
    let left = store.load().await.unwrap().sessions;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, used.id);
    assert_eq!(left[0].last_seen_at, rfc3339(last_use));
    // an idle lifetime too long to subtract never runs out
    assert_eq!(
        store
            .persist_sessions(vec![], in_forty_minutes, Duration::MAX)
            .await
            .unwrap(),
        0
    );
}

async fn a_pruned_log_sends_a_reader_that_is_behind_to_a_whole_reload(store: Store) {
    add(&store, "ana", Role::Operator).await;
    let (rev, q0) = marks(&store).await;
    start(&store, "ana", Duration::hours(1)).await;
    let (_, q1) = marks(&store).await;
    let day = Duration::days(1);
    // the log keeps what is younger than a few minutes
    store.persist_sessions(vec![], Utc::now(), day).await.unwrap();
    assert!(matches!(
        store.changes(rev, q0).await.unwrap(),
        AccessChanges::Sessions(_)
    ));
    let later = Utc::now() + crate::accounts::SESSION_LOG_KEPT + Duration::minutes(1);
    assert_eq!(store.persist_sessions(vec![], later, day).await.unwrap(), 0);
    match store.changes(rev, q0).await.unwrap() {
        AccessChanges::Reload(loaded) => {
            assert_eq!(loaded.revision, rev, "pruning changes no account");
            assert_eq!(loaded.session_seq, q1);
            assert_eq!(loaded.sessions.len(), 1);
        }
        _ => panic!("the log no longer reaches back: reload"),
    }
    assert!(matches!(
        store.changes(rev, q1).await.unwrap(),
        AccessChanges::Unchanged
    ));
}

// What only several instances on one database show.

/// Two instances on one new database.
fn two_instances() -> (Store, Store, TestDatabase) {
    let db = TestDatabase::new();
    let a: Store = db.open();
    let b: Store = db.open();
    (a, b, db)
}

#[actix::test]
async fn a_change_or_a_sign_in_on_one_instance_is_seen_by_another() {
    let (a, b, _db) = two_instances();
    add(&a, "root", Role::Admin).await;
    let (rev, seq) = marks(&b).await;
    add(&a, "ana", Role::Operator).await;
    let loaded = match b.changes(rev, seq).await.unwrap() {
        AccessChanges::Reload(loaded) => loaded,
        _ => panic!("an account added on A reloads B"),
    };
    assert!(loaded.users.iter().any(|u| u.name == "ana"));
    let (rev, seq) = (loaded.revision, loaded.session_seq);
    let s = start(&a, "ana", Duration::hours(1)).await;
    let c = session_changes(b.changes(rev, seq).await.unwrap());
    assert_eq!(c.started, vec![s.clone()]);
    assert!(c.ended.is_empty());
    assert!(b.delete_session(s.id.clone()).await.unwrap());
    let c = session_changes(a.changes(rev, c.seq).await.unwrap());
    assert_eq!(c.ended, vec![s.id]);
    let (token, _) = b.create_token("ana".into(), "".into(), None).await.unwrap();
    match a.changes(rev, c.seq).await.unwrap() {
        AccessChanges::Reload(loaded) => assert_eq!(loaded.tokens[0].0, token),
        _ => panic!("a token made on B reloads A"),
    }
}

#[actix::test]
async fn two_instances_removing_the_last_two_admins_at_once_leave_one() {
    let (a, b, _db) = two_instances();
    add(&a, "x", Role::Admin).await;
    add(&a, "y", Role::Admin).await;
    for round in 0..20 {
        // x and y both enabled admins again
        let back = UserChange {
            role: Some(Role::Admin),
            disabled: Some(false),
            ..UserChange::default()
        };
        a.change_user("x".into(), back).await.unwrap();
        let back = UserChange {
            role: Some(Role::Admin),
            disabled: Some(false),
            ..UserChange::default()
        };
        a.change_user("y".into(), back).await.unwrap();
        // both asked before either is awaited: they run at once
        let (on_a, on_b) = if round % 2 == 0 {
            (
                a.change_user("x".into(), disabled(true)),
                b.change_user("y".into(), role(Role::Viewer)),
            )
        } else {
            (
                a.change_user("x".into(), role(Role::Operator)),
                b.change_user("y".into(), disabled(true)),
            )
        };
        let (on_a, on_b) = futures_util::future::join(on_a, on_b).await;
        let refused = [&on_a, &on_b]
            .iter()
            .filter(|r| matches!(r, Err(e) if e.code == ErrorCode::Validation))
            .count();
        assert_eq!(refused, 1, "round {round}: {on_a:?} {on_b:?}");
        assert!(on_a.is_ok() || on_b.is_ok(), "round {round}: {on_a:?} {on_b:?}");
        let admins = b
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin && !u.disabled)
            .count();
        assert_eq!(admins, 1, "round {round}");
    }
}

#[actix::test]
async fn one_user_signing_in_on_two_instances_at_once_keeps_the_cap() {
    let (a, b, _db) = two_instances();
    add(&a, "ana", Role::Operator).await;
    let ask = |store: &Store| {
        store.create_session(
            "ana".into(),
            digest(new_session_secret().expose()),
            Utc::now() + Duration::hours(1),
            None,
            2,
        )
    };
    for round in 0..20 {
        let (on_a, on_b) = futures_util::future::join(ask(&a), ask(&b)).await;
        on_a.unwrap();
        on_b.unwrap();
        assert_eq!(session_ids(&a).await.len(), 2, "round {round}");
    }
}
